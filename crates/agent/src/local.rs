//! The agent's local API, on a unix socket in its data directory
//! (`DATA/agent.sock`, root only), for the `gantry image` commands on the
//! same machine while the agent holds the image store: `GET /images`,
//! `POST /images/import?path=FILE` (the agent reads the file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use hyper_util::rt::TokioIo;
use serde_json::json;

/// The socket's name in the data directory.
pub const SOCKET: &str = "agent.sock";

/// An image as the local API lists it.
pub fn image_json(i: &images::Image) -> serde_json::Value {
    json!({
        "id": i.id,
        "names": i.names,
        "repoDigests": i.repo_digests,
        "size": i.size,
    })
}

fn reply(code: StatusCode, body: serde_json::Value) -> Response {
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(code: StatusCode, message: String) -> Response {
    reply(code, json!({"error": message}))
}

async fn list(State(store): State<Arc<images::ImageStore>>) -> Response {
    let list: Vec<_> = store.list().iter().map(image_json).collect();
    reply(StatusCode::OK, json!({"images": list}))
}

#[derive(serde::Deserialize)]
struct ImportQuery {
    path: PathBuf,
}

async fn import(
    State(store): State<Arc<images::ImageStore>>,
    Query(q): Query<ImportQuery>,
) -> Response {
    if !q.path.is_absolute() {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{}: the path must be absolute", q.path.display()),
        );
    }
    match store.import(&q.path).await {
        Ok(images) => reply(
            StatusCode::OK,
            json!({"images": images.iter().map(image_json).collect::<Vec<_>>()}),
        ),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

/// Serves the local API on `DATA/agent.sock` until the task is dropped.
pub(crate) async fn serve(
    data_dir: &Path,
    store: images::ImageStore,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use std::os::unix::fs::PermissionsExt;
    let path = data_dir.join(SOCKET);
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let app = Router::new()
        .route("/images", get(list))
        .route("/images/import", post(import))
        .with_state(Arc::new(store));
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let app = app.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let app = app.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                tower::ServiceExt::oneshot(app, req.map(Body::new))
                                    .await
                                    .unwrap_or_else(|e| match e {}),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }))
}
