//! Routing by method for the pages outside the API document (the admin screen, the reset
//! page, `/metrics`): [`get`] and [`post`] build a `poem::RouteMethod` and remember its
//! methods, so that a request with another method gets a `405` whose `Allow` header names
//! them, as HTTP requires. (The API's paths take theirs from the document: `crate::routes`.)

use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, IntoEndpoint, IntoResponse, Request, Response, RouteMethod};

/// An endpoint per method, answering `405` with `Allow` for the others.
pub struct Methods {
    route: RouteMethod,
    allow: Vec<&'static str>,
}

/// `GET` (and so `HEAD`) served by `ep`.
pub fn get<E>(ep: E) -> Methods
where
    E: IntoEndpoint,
    E::Endpoint: 'static,
{
    Methods::none().get(ep)
}

/// `POST` served by `ep`.
pub fn post<E>(ep: E) -> Methods
where
    E: IntoEndpoint,
    E::Endpoint: 'static,
{
    Methods::none().post(ep)
}

impl Methods {
    fn none() -> Methods {
        Methods {
            route: RouteMethod::new(),
            allow: Vec::new(),
        }
    }

    pub fn get<E>(mut self, ep: E) -> Self
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        self.allow.extend(["GET", "HEAD"]);
        self.route = self.route.get(ep);
        self
    }

    pub fn post<E>(mut self, ep: E) -> Self
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        self.allow.push("POST");
        self.route = self.route.post(ep);
        self
    }
}

impl Endpoint for Methods {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        match self.route.call(req).await {
            Err(e) if e.status() == StatusCode::METHOD_NOT_ALLOWED => {
                let mut resp = super::error::json_error(e).await;
                if let Ok(allow) = HeaderValue::from_str(&self.allow.join(", ")) {
                    resp.headers_mut().insert(header::ALLOW, allow);
                }
                Ok(resp)
            }
            other => other.map(IntoResponse::into_response),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::handler;
    use poem::http::Method;

    #[handler]
    fn hello() -> &'static str {
        "hello"
    }

    #[tokio::test]
    async fn another_method_gets_405_with_allow() {
        let ep = get(hello).post(hello);
        let resp = ep
            .call(Request::builder().method(Method::DELETE).finish())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[header::ALLOW], "GET, HEAD, POST");
        let ok = ep
            .call(Request::builder().method(Method::POST).finish())
            .await;
        assert_eq!(ok.unwrap().status(), StatusCode::OK);
    }
}
