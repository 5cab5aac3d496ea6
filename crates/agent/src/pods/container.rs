//! From a Kubernetes container to what the runtime runs: the command line,
//! variable expansion, cgroup figures and the OOM score, as the kubelet
//! computes them. Pure functions.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};

/// The command line: `command` replaces the image's entrypoint (and then
/// the image's cmd is dropped), `args` replaces its cmd; `$(VAR)` in both
/// is expanded with the container's environment.
pub(crate) fn argv(
    c: &Container,
    entrypoint: &[String],
    cmd: &[String],
    env: &[(String, String)],
) -> Vec<String> {
    let vars: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand_all = |v: &[String]| v.iter().map(|s| expand(s, &vars)).collect::<Vec<_>>();
    match (&c.command, &c.args) {
        (Some(command), args) if !command.is_empty() => {
            let mut out = expand_all(command);
            out.extend(expand_all(args.as_deref().unwrap_or_default()));
            out
        }
        (_, Some(args)) if !args.is_empty() => {
            let mut out = entrypoint.to_vec();
            out.extend(expand_all(args));
            out
        }
        _ => {
            let mut out = entrypoint.to_vec();
            out.extend(cmd.iter().cloned());
            out
        }
    }
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, an
/// undefined reference is left as written, `$$` is a literal `$`.
pub(crate) fn expand(s: &str, vars: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Environment from `NAME=value` strings (an image's `Env`).
pub(crate) fn parse_env(list: &[String]) -> Vec<(String, String)> {
    list.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.clone(), String::new()),
        })
        .collect()
}

/// Later entries override earlier ones of the same name, keeping the first
/// position (so the image's PATH stays first, replaced in place).
pub(crate) fn merge_env(
    base: Vec<(String, String)>,
    over: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let mut out = base;
    for (k, v) in over {
        match out.iter_mut().find(|(name, _)| *name == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// Quality of service, as the API server defaults it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

/// The pod's QoS class: from `status.qosClass` when set, else computed.
pub(crate) fn qos(pod: &Pod) -> Qos {
    match pod.status.as_ref().and_then(|s| s.qos_class.as_deref()) {
        Some("Guaranteed") => return Qos::Guaranteed,
        Some("Burstable") => return Qos::Burstable,
        Some("BestEffort") => return Qos::BestEffort,
        _ => {}
    }
    let spec = pod.spec.as_ref();
    let all: Vec<&Container> = spec
        .map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .collect()
        })
        .unwrap_or_default();
    let list = |r: Option<&ResourceRequirements>, limits: bool| {
        r.and_then(|r| {
            if limits {
                r.limits.clone()
            } else {
                r.requests.clone()
            }
        })
        .unwrap_or_default()
    };
    let any = all.iter().any(|c| {
        !list(c.resources.as_ref(), true).is_empty()
            || !list(c.resources.as_ref(), false).is_empty()
    });
    if !any {
        return Qos::BestEffort;
    }
    let guaranteed = all.iter().all(|c| {
        let limits = list(c.resources.as_ref(), true);
        let requests = list(c.resources.as_ref(), false);
        ["cpu", "memory"].iter().all(|r| {
            limits
                .get(*r)
                .is_some_and(|l| requests.get(*r).is_none_or(|q| quantity(q) == quantity(l)))
        })
    });
    if guaranteed {
        Qos::Guaranteed
    } else {
        Qos::Burstable
    }
}

fn quantity(q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> i128 {
    kinds::parse_quantity(&q.0).map_or(0, |q| q.milli_value())
}

fn resource(
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    name: &str,
) -> Option<i128> {
    list.and_then(|l| l.get(name)).map(quantity)
}

/// The CFS period the kubelet uses (100 ms).
pub(crate) const CPU_PERIOD: u64 = 100_000;

/// Cgroup figures for a container: cpu shares from the cpu request (or
/// limit), a CFS quota from the cpu limit, the memory limit, and the OOM
/// score adjustment of its QoS class.
pub(crate) fn resources(c: &Container, pod: &Pod, memory_capacity: u64) -> runtime::Resources {
    let r = c.resources.as_ref();
    let requests = r.and_then(|r| r.requests.as_ref());
    let limits = r.and_then(|r| r.limits.as_ref());
    let cpu_request = resource(requests, "cpu").or_else(|| resource(limits, "cpu"));
    let cpu_limit = resource(limits, "cpu");
    let memory_limit = resource(limits, "memory");
    let memory_request = resource(requests, "memory").or(memory_limit);
    // shares = milli * 1024 / 1000, at least 2 (the kernel's minimum).
    let shares = cpu_request.map_or(2, |m| ((m * 1024) / 1000).max(2)) as u64;
    let quota = cpu_limit.map(|m| ((m * CPU_PERIOD as i128) / 1000).max(1000) as i64);
    let oom = match qos(pod) {
        Qos::Guaranteed => -997,
        Qos::BestEffort => 1000,
        Qos::Burstable => {
            let request = memory_request.map_or(0, |m| m / 1000);
            let cap = i128::from(memory_capacity.max(1));
            (1000 - (1000 * request) / cap).clamp(2, 999) as i32
        }
    };
    runtime::Resources {
        cpu_shares: Some(shares),
        cpu_quota: quota,
        cpu_period: quota.map(|_| CPU_PERIOD),
        memory_limit: memory_limit.map(|m| (m / 1000) as i64),
        pids_limit: None,
        oom_score_adj: Some(oom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_and_args_replace_entrypoint_and_cmd_as_kubernetes_says() {
        let ep = s(&["/docker-entrypoint.sh"]);
        let cmd = s(&["nginx", "-g", "daemon off;"]);
        let env = vec![("NAME".to_owned(), "world".to_owned())];
        let c = container(json!({"name": "a"}));
        assert_eq!(
            argv(&c, &ep, &cmd, &env),
            s(&["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"])
        );
        let c = container(json!({"name": "a", "args": ["echo", "$(NAME)"]}));
        assert_eq!(
            argv(&c, &ep, &cmd, &env),
            s(&["/docker-entrypoint.sh", "echo", "world"])
        );
        let c = container(json!({"name": "a", "command": ["sh", "-c"]}));
        assert_eq!(argv(&c, &ep, &cmd, &env), s(&["sh", "-c"]));
        let c = container(
            json!({"name": "a", "command": ["echo"], "args": ["$(NAME)", "$$(NAME)", "$(MISSING)"]}),
        );
        assert_eq!(
            argv(&c, &ep, &cmd, &env),
            s(&["echo", "world", "$(NAME)", "$(MISSING)"])
        );
    }

    #[test]
    fn env_merges_in_place() {
        let base = parse_env(&s(&["PATH=/bin", "HOME=/root"]));
        let merged = merge_env(
            base,
            vec![("PATH".into(), "/usr/bin".into()), ("X".into(), "1".into())],
        );
        assert_eq!(
            merged,
            vec![
                ("PATH".to_owned(), "/usr/bin".to_owned()),
                ("HOME".to_owned(), "/root".to_owned()),
                ("X".to_owned(), "1".to_owned())
            ]
        );
    }

    #[test]
    fn resources_become_shares_quota_limit_and_oom_score() {
        let pod: Pod = serde_json::from_value(json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                                         "limits": {"cpu": "500m", "memory": "128Mi"}}}]}}))
        .unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let r = resources(c, &pod, 4 << 30);
        assert_eq!(r.cpu_shares, Some(256));
        assert_eq!(r.cpu_quota, Some(50_000));
        assert_eq!(r.cpu_period, Some(100_000));
        assert_eq!(r.memory_limit, Some(128 << 20));
        assert_eq!(qos(&pod), Qos::Burstable);
        // 1000 - 1000 * 64Mi / 4Gi = 985.
        assert_eq!(r.oom_score_adj, Some(985));

        let best: Pod =
            serde_json::from_value(json!({"spec": {"containers": [{"name": "a"}]}})).unwrap();
        let r = resources(&best.spec.as_ref().unwrap().containers[0], &best, 4 << 30);
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.memory_limit, r.oom_score_adj),
            (Some(2), None, None, Some(1000))
        );
        let g: Pod = serde_json::from_value(json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}}))
        .unwrap();
        assert_eq!(qos(&g), Qos::Guaranteed);
        assert_eq!(
            resources(&g.spec.as_ref().unwrap().containers[0], &g, 4 << 30).oom_score_adj,
            Some(-997)
        );
    }
}
