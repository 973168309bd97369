//! The authenticated caller of a service endpoint. Services verify the same token the
//! gateway verified: the gateway is not the only line of defence.

use crate::error::AuthRejection;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use kaip_auth::{AuthError, Claims, TokenVerifier};
use kaip_contracts::{Actor, ConsortiumId, Role};
use std::future::Future;
use std::pin::Pin;

/// Extract this in a handler to require a valid token.
#[derive(Clone, Debug)]
pub struct Caller(pub Claims);

impl Caller {
    /// Refuses unless the caller holds one of `roles`; `action` completes "role X may not ...".
    pub fn require(&self, roles: &[Role], action: &str) -> Result<(), AuthError> {
        if self.0.has_any_role(roles) {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                role: self.0.role,
                action: action.to_owned(),
            })
        }
    }

    /// Refuses unless the caller may act for or read `consortium`.
    pub fn require_consortium(
        &self,
        consortium: ConsortiumId,
        action: &str,
    ) -> Result<(), AuthError> {
        if self.0.may_access_consortium(consortium) {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                role: self.0.role,
                action: format!("{action} for another consortium"),
            })
        }
    }

    /// Refuses an `integration` caller whose token lacks `scope` (see
    /// [`kaip_auth::scopes`]); other roles are governed by their role checks.
    pub fn require_scope(&self, scope: &str, action: &str) -> Result<(), AuthError> {
        if self.0.has_scope(scope) {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                role: self.0.role,
                action: format!("{action} without the `{scope}` scope"),
            })
        }
    }

    pub fn actor(&self) -> Actor {
        Actor {
            subject: self.0.sub.clone(),
            role: self.0.role,
        }
    }

    pub fn role(&self) -> Role {
        self.0.role
    }
}

impl FromRequest for Caller {
    type Error = AuthRejection;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifier = req.app_data::<web::Data<TokenVerifier>>().cloned();
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Box::pin(async move {
            let Some(verifier) = verifier else {
                tracing::error!("TokenVerifier missing from app data");
                return Err(AuthRejection(AuthError::MissingToken));
            };
            // Async: a JWKS-configured verifier may fetch the identity provider's keys.
            let claims = verifier
                .authenticate(header.as_deref())
                .await
                .map_err(AuthRejection)?;
            // The audit trail records who made the request's changes.
            crate::audit::note_actor(&claims);
            Ok(Caller(claims))
        })
    }
}
