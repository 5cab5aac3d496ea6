//! Events the controllers publish about the objects they act on, under
//! their own names (`kubectl describe` shows them).

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};

/// What an event says of a failed request: the API server's own message
/// (`pods "x" is forbidden: exceeded quota: ...`, as Kubernetes' events
/// read), or the client's error when there was no answer.
pub fn failure(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        e => e.to_string(),
    }
}

/// One controller's event publisher.
pub struct Events {
    recorder: Recorder,
    controller: &'static str,
}

impl Events {
    /// Events reported by `controller` (as `reportingComponent`).
    pub fn new(client: kube::Client, controller: &'static str) -> Self {
        let reporter = Reporter {
            controller: controller.into(),
            instance: None,
        };
        Self {
            recorder: Recorder::new(client, reporter),
            controller,
        }
    }

    /// Publishes an event about `obj`; a failure is logged, not returned
    /// (an event lost must not fail the reconcile that made it).
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let reference: ObjectReference = obj.object_ref(&());
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::debug!(controller = self.controller, error = %e, "publishing an event");
        }
    }

    /// Reports a pod made for `owner` (`SuccessfulCreate`) or not
    /// (`FailedCreate`), in the words ReplicaSets, Jobs and DaemonSets use.
    pub async fn pod_create<K: Resource<DynamicType = ()>>(
        &self,
        owner: &K,
        result: &Result<Pod, kube::Error>,
    ) {
        match result {
            Ok(p) => {
                let note = format!("Created pod: {}", p.name_any());
                self.publish(owner, EventType::Normal, "SuccessfulCreate", note)
                    .await
            }
            Err(e) => {
                let note = format!("Error creating: {}", failure(e));
                self.publish(owner, EventType::Warning, "FailedCreate", note)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_request_is_told_in_the_servers_words() {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": 403, "reason": "Forbidden",
            "message": "pods \"p\" is forbidden: exceeded quota: small"
        }))
        .unwrap();
        let refused = kube::Error::Api(Box::new(status));
        assert_eq!(
            failure(&refused),
            "pods \"p\" is forbidden: exceeded quota: small"
        );
        let unanswered = kube::Error::LinesCodecMaxLineLengthExceeded;
        assert_eq!(failure(&unanswered), unanswered.to_string());
    }
}
