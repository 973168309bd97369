//! The JSON body extractor every handler uses: deserialise, then check every text field
//! (`kaip_contracts::text`) before the handler runs, so no handler can forget to and
//! nothing is written from a body that breaks the rule. The body is also handed to the
//! audit trail as the request's input.

use crate::error::CommonError;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures::future::LocalBoxFuture;
use kaip_contracts::text::CheckText;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A JSON body whose text fields passed [`CheckText`]; refused otherwise with
/// `VALIDATION_FAILED` naming the field and the rule.
#[derive(Debug)]
pub struct ValidJson<T>(pub T);

impl<T> ValidJson<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for ValidJson<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + Serialize + CheckText + 'static> FromRequest for ValidJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<T>::from_request(req, payload);
        Box::pin(async move {
            let body = json.await?.into_inner();
            body.check_text()
                .map_err(|v| CommonError::validation(v.field, v.rule))?;
            // The audit trail records the input of the request's changes (redacted).
            if let Ok(value) = serde_json::to_value(&body) {
                crate::audit::note_body(value);
            }
            Ok(ValidJson(body))
        })
    }
}
