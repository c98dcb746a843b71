//! The one table of stable API error codes. Every error body the API sends is
//! `{ "code": <one of these>, "message": …, "details": … }`. Codes are never renamed or reused;
//! docs/errors.md lists them (a test keeps the two in step).

macro_rules! error_codes {
    ($($variant:ident => ($code:literal, $status:literal, $doc:literal)),+ $(,)?) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($variant),+ }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];
            /// The stable machine-readable code.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code),+ }
            }
            /// The HTTP status the code is sent with.
            pub fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status),+ }
            }
            /// What the code means, for the documentation table.
            pub fn doc(self) -> &'static str {
                match self { $(ErrorCode::$variant => $doc),+ }
            }
        }
    };
}

error_codes! {
    InvalidRequest => ("invalid_request", 400, "The request is malformed: a bad path or query parameter, or a field fails validation. `details` names the field."),
    InvalidJson => ("invalid_json", 400, "The body is not valid JSON, or does not match the expected shape (missing, unknown or wrongly typed fields)."),
    Unauthenticated => ("unauthenticated", 401, "No credential, or the credential is unknown, malformed, expired or revoked."),
    InvalidCredentials => ("invalid_credentials", 401, "Sign-in failed: wrong email or password (the two are not distinguished)."),
    Forbidden => ("forbidden", 403, "The credential is valid but lacks the scope or role the route needs."),
    TenantSuspended => ("tenant_suspended", 403, "The tenant of the credential is suspended."),
    NotFound => ("not_found", 404, "No such route, or no such object in the caller's tenant."),
    MethodNotAllowed => ("method_not_allowed", 405, "The route exists but not with this HTTP method."),
    Conflict => ("conflict", 409, "The object already exists (for example a tenant slug or user email in use)."),
    PayloadTooLarge => ("payload_too_large", 413, "The body is larger than the configured limit; nothing was kept."),
    CredentialsRejected => ("credentials_rejected", 422, "New connection credentials failed the connector's test call; the old ones are kept. `details.diagnosis` says why (class, HTTP status, message; never a secret)."),
    UnsupportedMediaType => ("unsupported_media_type", 415, "The Content-Type is not one the route accepts (JSON routes need application/json)."),
    Timeout => ("timeout", 503, "The request took longer than the configured timeout and was abandoned."),
    Unavailable => ("unavailable", 503, "A dependency (the database) is not reachable or not ready."),
    Internal => ("internal", 500, "An unexpected error. Details are logged with the request id, never returned."),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {}", c.as_str());
            assert!(c.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!((400..600).contains(&c.http_status()));
        }
    }
}
