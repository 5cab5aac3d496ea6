//! The in-process door: requests handed straight to the router, for the
//! components a process runs beside its own API server (`gantry up`'s
//! scheduler, controllers and agent). No TLS, no socket, no HTTP framing:
//! the request and the response body (a watch's too) pass as values. The
//! caller names the user its requests are made as, where a client over the
//! network would show a certificate. Each request's handler runs on a task
//! of its own, as on a connection's. Upgrades (exec, attach, port-forward)
//! need a connection and are refused here; those components make none.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Bytes, HttpBody};
use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use crate::auth::User;
use crate::server::CertUser;
use crate::status::ApiError;

/// A tower service answering requests as the API server would, for one
/// user; cheap to clone.
#[derive(Clone)]
pub struct LocalService {
    router: Router,
    user: User,
}

impl std::fmt::Debug for LocalService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalService")
            .field("user", &self.user.name)
            .finish()
    }
}

impl LocalService {
    pub(crate) fn new(router: Router, user: &str, groups: &[&str]) -> Self {
        Self {
            router,
            user: User::new(user, "", groups.iter().map(|g| (*g).to_owned())),
        }
    }
}

type BoxFuture = std::pin::Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<B> tower::Service<http::Request<B>> for LocalService
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let mut req: Request = req.map(axum::body::Body::new);
        if is_upgrade(&req) {
            let refused = ApiError::bad_request(
                "an upgraded connection (exec, attach, port-forward) cannot be made in-process",
            );
            return Box::pin(async move { Ok(refused.into_response()) });
        }
        // Whatever the caller put there, the user is the one this door
        // was made for.
        req.extensions_mut()
            .insert(CertUser(Some(self.user.clone())));
        // The handler runs on a task of its own, as on a connection's: a caller
        // that gives up does not cut it off halfway, and a handler that panics
        // answers 500 instead of unwinding into the caller.
        let handler = tokio::spawn(tower::ServiceExt::oneshot(self.router.clone(), req));
        Box::pin(async move {
            Ok(match handler.await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(e) => {
                    ApiError::internal(format!("the request's handler failed: {e}")).into_response()
                }
            })
        })
    }
}

fn is_upgrade(req: &Request) -> bool {
    req.headers().contains_key(http::header::UPGRADE)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use crate::{ApiServer, Config};

    async fn call(
        service: crate::LocalService,
        req: http::Request<axum::body::Body>,
    ) -> (http::StatusCode, Value) {
        let response = service.oneshot(req).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn requests_are_served_as_the_user_the_door_was_made_for() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn store::Store> =
            store::open(&store::StoreSpec::Embedded(dir.path().join("store")))
                .await
                .unwrap();
        let config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().join("server"));
        let server = ApiServer::start(config, store).await.unwrap();
        let door = server.local_service("system:node:n1", &["system:nodes"]);

        // Who am I: the door's user, whatever the request claims.
        let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
        let req = http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
            .header("content-type", "application/json")
            .header("authorization", "Bearer not-a-token")
            .body(axum::body::Body::from(review.to_string()))
            .unwrap();
        let (status, body) = call(door.clone(), req).await;
        assert_eq!(status, http::StatusCode::CREATED, "{body}");
        let user = &body["status"]["userInfo"];
        assert_eq!(user["username"], "system:node:n1");
        assert_eq!(
            user["groups"],
            json!(["system:nodes", "system:authenticated"])
        );

        // An object written through the door is there, as through the network.
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "through-the-door"}});
        let req = http::Request::post("/api/v1/namespaces")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(ns.to_string()))
            .unwrap();
        let (status, body) = call(door.clone(), req).await;
        assert_eq!(status, http::StatusCode::CREATED, "{body}");
        let req = http::Request::get("/api/v1/namespaces/through-the-door")
            .body(axum::body::Body::empty())
            .unwrap();
        let (status, body) = call(door.clone(), req).await;
        assert_eq!(status, http::StatusCode::OK);
        assert_eq!(body["status"]["phase"], "Active");

        // An upgrade needs a connection: refused with a Status.
        let req = http::Request::post("/api/v1/namespaces/default/pods/p/exec?command=sh")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .body(axum::body::Body::empty())
            .unwrap();
        let (status, body) = call(door, req).await;
        assert_eq!(status, http::StatusCode::BAD_REQUEST);
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["reason"], "BadRequest");
        server.shutdown().await;
    }
}
