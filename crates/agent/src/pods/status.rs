//! A pod's status from what the worker knows of its containers, as the
//! kubelet computes it (`getPhase`, the pod conditions, container
//! statuses). Pure: the worker passes its state and the time.

use serde_json::{Value, json};

use k8s_openapi::api::core::v1::Pod;

/// How a container instance ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Terminated {
    pub(crate) exit_code: i32,
    pub(crate) signal: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`, `StartError`, `ContainerCannotRun`.
    pub(crate) reason: String,
    pub(crate) message: String,
    pub(crate) started_at: Option<String>,
    pub(crate) finished_at: String,
    pub(crate) container_id: String,
}

impl Terminated {
    fn to_json(&self) -> Value {
        let mut t = json!({
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "containerID": self.container_id,
        });
        if let Some(s) = self.signal {
            t["signal"] = json!(s);
        }
        if !self.message.is_empty() {
            t["message"] = json!(self.message);
        }
        json!({"terminated": t})
    }
}

/// Where a container is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Not running: `ContainerCreating`, `PodInitializing`,
    /// `CrashLoopBackOff`, `ErrImagePull`, ...
    Waiting { reason: String, message: String },
    /// Running since then.
    Running { started_at: String },
    /// Ended and will not be restarted.
    Terminated(Terminated),
}

/// One container as the status shows it.
#[derive(Clone, Debug)]
pub(crate) struct ContainerView {
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) image_id: String,
    pub(crate) container_id: Option<String>,
    pub(crate) state: State,
    pub(crate) last: Option<Terminated>,
    pub(crate) restart_count: i32,
    pub(crate) ready: bool,
    pub(crate) started: bool,
}

impl ContainerView {
    fn to_json(&self) -> Value {
        let state = match &self.state {
            State::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if !message.is_empty() {
                    w["message"] = json!(message);
                }
                json!({"waiting": w})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated(t) => t.to_json(),
        };
        let mut v = json!({
            "name": self.name,
            "state": state,
            "lastState": self.last.as_ref().map_or_else(|| json!({}), Terminated::to_json),
            "ready": self.ready,
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": self.image_id,
            "started": self.started,
        });
        if let Some(id) = &self.container_id {
            v["containerID"] = json!(id);
        }
        v
    }

    /// Counted as stopped by `getPhase`: terminated, or waiting to restart
    /// after having run.
    fn stopped(&self) -> Option<bool> {
        match &self.state {
            State::Terminated(t) => Some(t.exit_code == 0),
            State::Waiting { .. } => self.last.as_ref().map(|t| t.exit_code == 0),
            State::Running { .. } => None,
        }
    }
}

/// Everything the pod's status is computed from.
#[derive(Clone, Debug)]
pub(crate) struct PodView {
    pub(crate) init: Vec<ContainerView>,
    pub(crate) containers: Vec<ContainerView>,
    /// The sandbox and its network are up.
    pub(crate) sandbox_ready: bool,
    pub(crate) pod_ip: Option<String>,
    pub(crate) host_ip: String,
    pub(crate) start_time: String,
    /// An init container failed under `restartPolicy: Never`.
    pub(crate) init_failed: bool,
    /// Every init container has succeeded.
    pub(crate) initialized: bool,
}

/// The pod's phase, as the kubelet's `getPhase`.
pub(crate) fn phase(view: &PodView, restart_policy: &str) -> &'static str {
    if view.init_failed {
        return "Failed";
    }
    if !view.initialized {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &view.containers {
        match (&c.state, c.stopped()) {
            (State::Running { .. }, _) => running += 1,
            (_, Some(ok)) => {
                stopped += 1;
                if ok {
                    succeeded += 1;
                }
            }
            (_, None) => waiting += 1,
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        return match restart_policy {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running",
        };
    }
    "Pending"
}

fn condition(
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    old: &Pod,
    now: &str,
) -> Value {
    let status = if ok { "True" } else { "False" };
    let since = old
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_ && c.status == status))
        .and_then(|c| c.last_transition_time.as_ref())
        .map_or_else(|| json!(now), |t| json!(t));
    let mut c = json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
    if let (false, Some(r)) = (ok, reason) {
        c["reason"] = json!(r);
    }
    if let (false, Some(m)) = (ok, message) {
        c["message"] = json!(m);
    }
    c
}

/// The whole `status` of the pod.
pub(crate) fn pod_status(pod: &Pod, view: &PodView, now: &str) -> Value {
    let restart_policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let phase = phase(view, restart_policy);
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let names = |cs: &[ContainerView], pred: &dyn Fn(&ContainerView) -> bool| {
        cs.iter()
            .filter(|c| pred(c))
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
    };
    let unready = names(&view.containers, &|c| !c.ready);
    let uninitialized = names(
        &view.init,
        &|c| !matches!(&c.state, State::Terminated(t) if t.exit_code == 0),
    );
    let reason_for_unready = if terminal {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let ready = unready.is_empty() && !terminal && view.initialized;
    let list = |v: &[String]| format!("[{}]", v.join(" "));
    let mut conditions = vec![
        condition(
            "PodReadyToStartContainers",
            view.sandbox_ready,
            None,
            None,
            pod,
            now,
        ),
        condition(
            "Initialized",
            view.initialized,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                list(&uninitialized)
            )),
            pod,
            now,
        ),
        condition(
            "Ready",
            ready,
            Some(reason_for_unready),
            (!terminal).then(|| format!("containers with unready status: {}", list(&unready))),
            pod,
            now,
        ),
        condition(
            "ContainersReady",
            ready,
            Some(reason_for_unready),
            (!terminal).then(|| format!("containers with unready status: {}", list(&unready))),
            pod,
            now,
        ),
    ];
    // The scheduler's condition stays as it wrote it.
    if let Some(c) = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
    {
        conditions.push(serde_json::to_value(c).unwrap_or_default());
    } else {
        conditions.push(condition("PodScheduled", true, None, None, pod, now));
    }
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}],
        "startTime": view.start_time,
        "containerStatuses": view.containers.iter().map(ContainerView::to_json).collect::<Vec<_>>(),
    });
    if let Some(ip) = &view.pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    if !view.init.is_empty() {
        status["initContainerStatuses"] = json!(
            view.init
                .iter()
                .map(ContainerView::to_json)
                .collect::<Vec<_>>()
        );
    }
    if let Some(q) = pod.status.as_ref().and_then(|s| s.qos_class.clone()) {
        status["qosClass"] = json!(q);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctr(name: &str, state: State, last: Option<Terminated>) -> ContainerView {
        ContainerView {
            name: name.into(),
            image: "busybox".into(),
            image_id: String::new(),
            container_id: None,
            ready: matches!(state, State::Running { .. }),
            started: matches!(state, State::Running { .. }),
            state,
            last,
            restart_count: 0,
        }
    }

    fn done(code: i32) -> Terminated {
        Terminated {
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: String::new(),
            started_at: None,
            finished_at: "t".into(),
            container_id: "runc://x".into(),
        }
    }

    fn view(containers: Vec<ContainerView>) -> PodView {
        PodView {
            init: vec![],
            containers,
            sandbox_ready: true,
            pod_ip: Some("10.244.0.2".into()),
            host_ip: "10.0.0.1".into(),
            start_time: "t".into(),
            init_failed: false,
            initialized: true,
        }
    }

    fn waiting(reason: &str) -> State {
        State::Waiting {
            reason: reason.into(),
            message: String::new(),
        }
    }

    #[test]
    fn phases_follow_get_phase() {
        let running = State::Running {
            started_at: "t".into(),
        };
        assert_eq!(
            phase(
                &view(vec![ctr("a", waiting("ContainerCreating"), None)]),
                "Always"
            ),
            "Pending"
        );
        assert_eq!(
            phase(&view(vec![ctr("a", running.clone(), None)]), "Always"),
            "Running"
        );
        // A crash-looping container keeps the pod Running.
        assert_eq!(
            phase(
                &view(vec![ctr("a", waiting("CrashLoopBackOff"), Some(done(1)))]),
                "Always"
            ),
            "Running"
        );
        assert_eq!(
            phase(
                &view(vec![ctr("a", State::Terminated(done(0)), None)]),
                "Never"
            ),
            "Succeeded"
        );
        assert_eq!(
            phase(
                &view(vec![ctr("a", State::Terminated(done(0)), None)]),
                "OnFailure"
            ),
            "Succeeded"
        );
        assert_eq!(
            phase(
                &view(vec![ctr("a", State::Terminated(done(2)), None)]),
                "Never"
            ),
            "Failed"
        );
        assert_eq!(
            phase(
                &view(vec![
                    ctr("a", State::Terminated(done(0)), None),
                    ctr("b", running, None)
                ]),
                "Never"
            ),
            "Running"
        );
        let mut v = view(vec![ctr("a", waiting("PodInitializing"), None)]);
        v.initialized = false;
        assert_eq!(phase(&v, "Always"), "Pending");
        v.init_failed = true;
        assert_eq!(phase(&v, "Never"), "Failed");
    }

    #[test]
    fn conditions_name_the_containers_not_ready() {
        let pod: Pod = serde_json::from_value(json!({"spec": {"containers": []}})).unwrap();
        let v = view(vec![
            ctr(
                "a",
                State::Running {
                    started_at: "t".into(),
                },
                None,
            ),
            ctr("b", waiting("ContainerCreating"), None),
        ]);
        let s = pod_status(&pod, &v, "now");
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["message"], "containers with unready status: [b]");
        assert_eq!(s["podIP"], "10.244.0.2");
        assert_eq!(
            s["containerStatuses"][1]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert_eq!(s["containerStatuses"][0]["lastState"], json!({}));
    }
}
