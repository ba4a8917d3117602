//! The HTTP floor: a page's answer served from memory by actix-web, with no database, to the same
//! clients. What answering over HTTP costs on this machine before any SQL: the part of the API's
//! cost that the hand-written SQL, which has no HTTP at all, never pays.

use std::net::TcpListener;

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};

/// A server answering `GET /` with one body, until [`Floor::stop`].
pub struct Floor {
    pub url: String,
    handle: ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Floor {
    pub fn serve(body: Bytes) -> Floor {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the floor's listener");
        let url = format!("http://{}/", listener.local_addr().expect("its address"));
        let server = HttpServer::new(move || {
            let body = body.clone();
            App::new().route(
                "/",
                web::get().to(move || {
                    let body = body.clone();
                    async move { HttpResponse::Ok().content_type("application/json").body(body) }
                }),
            )
        })
        .listen(listener)
        .expect("listening")
        .disable_signals()
        .run();
        let handle = server.handle();
        Floor { url, handle, server: tokio::spawn(server) }
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.server.await;
    }
}
