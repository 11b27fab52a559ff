//! From AWS SDK errors to capability errors.
//!
//! Plugins turn a [`CapError`]'s `code` into an ASL error name that `Retry`/`Catch`
//! match, identically on `local` and `aws`; so AWS codes are kept where the local
//! provider uses the same one (`DBInstanceNotFound`, `InvalidDBInstanceState`, ...) and
//! the families AWS spells many ways are normalised to one code (`Throttling`,
//! `AccessDenied`), the original code staying in the message. Every message carries
//! the AWS request id, since the journal stores messages of failed calls.

use std::error::Error as StdError;
use std::future::Future;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::request_id::RequestId;
use runbook_caps::{CapCall, CapError, ErrorKind};

/// Errors constructing or configuring the provider (capability calls fail with
/// [`CapError`] instead).
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(
        "no AWS region configured: pass --region, set AWS_REGION, or set `region` in the \
         profile (~/.aws/config)"
    )]
    NoRegion,
}

/// How to configure credentials, for the error a call without any gets.
pub const CREDENTIALS_HELP: &str = "no AWS credentials found: set AWS_ACCESS_KEY_ID and \
    AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or AWS_PROFILE with a \
    profile from ~/.aws/credentials or ~/.aws/config (`aws configure`, or `aws sso login \
    --profile NAME` for IAM Identity Center), or run on an instance/task with an IAM role";

const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "PriorRequestNotComplete",
    "SlowDown",
    "BandwidthLimitExceeded",
    "EC2ThrottledException",
    "TransactionInProgressException",
];

const ACCESS_DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "NotAuthorized",
    "AuthorizationError",
    "AuthFailure",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "OptInRequired",
];

/// Codes AWS also returns when the region is an opt-in region not enabled for the
/// account (or the credentials are wrong): worth a hint.
const REGION_OR_CREDENTIALS: &[&str] = &[
    "AuthFailure",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "OptInRequired",
];

const DEPENDENCY: &[&str] = &[
    "DependencyViolation",
    "HostedZoneNotEmpty",
    "HealthCheckInUse",
    "ResourceInUse",
    "ResourceInUseException",
    "InvalidDBSubnetGroupFault",
];

const UNAVAILABLE: &[&str] = &[
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "InternalFailure",
    "InternalError",
    "InternalServiceError",
    "InternalServiceErrorException",
    "InternalServerError",
    "ServiceFailure",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Classify one AWS error by its code, message and HTTP status. Pure, so the table
/// is unit-tested; [`from_sdk`] adds the request id and context.
pub fn classify(code: &str, message: &str, status: Option<u16>) -> CapError {
    let lower = message.to_ascii_lowercase();
    let with_code = |norm: &str| {
        if code == norm || code.is_empty() {
            message.to_string()
        } else {
            format!("{code}: {message}")
        }
    };
    let (kind, out_code, msg, retryable) = if THROTTLING.contains(&code) {
        (
            ErrorKind::Throttling,
            "Throttling".to_string(),
            with_code("Throttling"),
            true,
        )
    } else if ACCESS_DENIED.contains(&code) {
        (
            ErrorKind::AccessDenied,
            "AccessDenied".into(),
            with_code("AccessDenied"),
            false,
        )
    } else if code == "InstanceQuotaExceeded"
        || lower.contains("maximum number of db instances has been reached")
    {
        (
            ErrorKind::QuotaExceeded,
            "InstanceQuotaExceeded".into(),
            message.into(),
            false,
        )
    } else if code.contains("QuotaExceeded")
        || code.contains("LimitExceeded")
        || (code.starts_with("TooMany") && code != "TooManyRequestsException")
    {
        (ErrorKind::QuotaExceeded, code.into(), message.into(), false)
    } else if code.ends_with("NotFound")
        || code.ends_with("NotFoundFault")
        || code.ends_with("NotFoundException")
        || code.starts_with("NoSuch")
        || code == "ResourceNotFound"
    {
        (ErrorKind::NotFound, code.into(), message.into(), false)
    } else if code.contains("AlreadyExists")
        || code == "ResourceExistsException"
        || code == "ConflictingDomainExists"
        || code.ends_with(".Duplicate")
    {
        (ErrorKind::AlreadyExists, code.into(), message.into(), false)
    } else if DEPENDENCY.contains(&code) {
        (
            ErrorKind::DependencyViolation,
            code.into(),
            message.into(),
            false,
        )
    } else if (code.starts_with("Invalid") && code.contains("State"))
        || code == "IncorrectState"
        || code == "InvalidStateTransition"
        // Secrets Manager: "scheduled for deletion" and friends.
        || code == "InvalidRequestException"
    {
        (ErrorKind::InvalidState, code.into(), message.into(), false)
    } else if UNAVAILABLE.contains(&code) || status.is_some_and(|s| s >= 500) {
        let c = if code.is_empty() {
            "ServiceUnavailable"
        } else {
            code
        };
        (ErrorKind::Unavailable, c.into(), message.into(), true)
    } else if status.is_some_and(|s| (400..500).contains(&s)) || !code.is_empty() {
        // Validation errors: InvalidParameterValue, InvalidParameterCombination,
        // ValidationError, InvalidChangeBatch, overlapping CIDRs, ...
        (
            ErrorKind::InvalidParameter,
            code.into(),
            message.into(),
            false,
        )
    } else {
        (
            ErrorKind::Internal,
            "InternalFailure".into(),
            message.into(),
            false,
        )
    };
    CapError {
        kind,
        code: if out_code.is_empty() {
            "InternalFailure".into()
        } else {
            out_code
        },
        message: msg,
        retryable,
    }
}

/// Map an SDK error of `call` to a capability error.
pub fn from_sdk<E>(call: &CapCall, err: SdkError<E, HttpResponse>) -> CapError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let request_id = err.request_id().map(str::to_string);
    let region = call.region.as_deref().unwrap_or(crate::ROUTE53_REGION);
    let mut out = match &err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            let code = e.code().unwrap_or_default();
            let message = e
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| DisplayErrorContext(&err).to_string());
            let mut c = classify(code, &message, Some(se.raw().status().as_u16()));
            if REGION_OR_CREDENTIALS.contains(&code) {
                c.message.push_str(&format!(
                    " — check the credentials; if {region} is an opt-in region, enable it for \
                     the account (AWS console → Account → AWS Regions)"
                ));
            }
            c
        }
        SdkError::TimeoutError(_) => CapError::new(
            ErrorKind::Unavailable,
            "RequestTimeout",
            format!("{}: timed out calling AWS in {region}", call.iam_name()),
        ),
        SdkError::DispatchFailure(d) => {
            let text = DisplayErrorContext(&err).to_string();
            if is_credentials_error(&text) {
                credentials_error(&text)
            } else if d.is_timeout() {
                CapError::new(
                    ErrorKind::Unavailable,
                    "RequestTimeout",
                    format!(
                        "{}: timed out connecting to AWS in {region}: {text}",
                        call.iam_name()
                    ),
                )
            } else {
                let hint = if text.contains("dns error") || text.contains("failed to lookup") {
                    format!(" (is '{region}' a valid region name?)")
                } else {
                    String::new()
                };
                CapError::unavailable(format!(
                    "{}: cannot reach AWS in {region}: {text}{hint}",
                    call.iam_name()
                ))
            }
        }
        SdkError::ConstructionFailure(_) => {
            let text = DisplayErrorContext(&err).to_string();
            if is_credentials_error(&text) {
                credentials_error(&text)
            } else {
                CapError::invalid_parameter(format!("{}: {text}", call.iam_name()))
            }
        }
        SdkError::ResponseError(_) => CapError::unavailable(format!(
            "{}: unreadable response from AWS: {}",
            call.iam_name(),
            DisplayErrorContext(&err)
        )),
        _ => CapError::internal(format!(
            "{}: {}",
            call.iam_name(),
            DisplayErrorContext(&err)
        )),
    };
    if let Some(id) = request_id {
        out.message.push_str(&format!(" (request id: {id})"));
    }
    out
}

fn is_credentials_error(text: &str) -> bool {
    text.contains("no providers in chain provided credentials")
        || text.contains("failed to load credentials")
        || text.contains("error occurred while loading credentials")
        || text.contains("CredentialsNotLoaded")
        || text.contains("the credential provider was not enabled")
        || text.contains("credentials")
            && (text.contains("not found") || text.contains("could not find"))
}

fn credentials_error(text: &str) -> CapError {
    CapError::new(
        ErrorKind::AccessDenied,
        "CredentialsNotFound",
        format!("{CREDENTIALS_HELP} ({text})"),
    )
}

/// Await one SDK call: errors mapped, the request id logged at debug level on success.
pub(crate) async fn send<O, E>(
    call: &CapCall,
    op: &'static str,
    fut: impl Future<Output = Result<O, SdkError<E, HttpResponse>>>,
) -> Result<O, CapError>
where
    O: RequestId,
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    // Boxed: the SDK's futures are large in debug builds, and inlined into every
    // handler's state machine they overflow a test thread's stack.
    match Box::pin(fut).await {
        Ok(out) => {
            tracing::debug!(
                call = %call.iam_name(),
                op,
                region = call.region.as_deref().unwrap_or("global"),
                request_id = out.request_id().unwrap_or("-"),
                "aws ok"
            );
            Ok(out)
        }
        Err(e) => Err(from_sdk(call, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(code: &str, msg: &str, status: u16) -> (ErrorKind, String, bool) {
        let e = classify(code, msg, Some(status));
        (e.kind, e.code, e.retryable)
    }

    #[test]
    fn rds_codes_keep_the_local_providers_names() {
        assert_eq!(
            k("DBInstanceNotFound", "DBInstance x not found.", 404),
            (ErrorKind::NotFound, "DBInstanceNotFound".into(), false)
        );
        assert_eq!(
            k("DBInstanceAlreadyExists", "DB instance already exists", 400),
            (
                ErrorKind::AlreadyExists,
                "DBInstanceAlreadyExists".into(),
                false
            )
        );
        assert_eq!(
            k(
                "InvalidDBInstanceState",
                "DB instance is not in available state.",
                400
            ),
            (
                ErrorKind::InvalidState,
                "InvalidDBInstanceState".into(),
                false
            )
        );
        assert_eq!(
            k("DBSubnetGroupNotFoundFault", "not found", 404).0,
            ErrorKind::NotFound
        );
        assert_eq!(
            k("DBParameterGroupNotFound", "not found", 404).0,
            ErrorKind::NotFound
        );
        assert_eq!(
            k("InvalidDBSubnetGroupStateFault", "in use", 400).0,
            ErrorKind::InvalidState
        );
    }

    #[test]
    fn quota_exceeded() {
        assert_eq!(
            k(
                "InstanceQuotaExceeded",
                "Cannot create more than 40 db instances: the maximum number of DB instances has been reached.",
                400
            ),
            (
                ErrorKind::QuotaExceeded,
                "InstanceQuotaExceeded".into(),
                false
            )
        );
        // The message alone is enough (some endpoints return a generic code).
        assert_eq!(
            k(
                "InvalidParameterValue",
                "The maximum number of DB instances has been reached.",
                400
            )
            .1,
            "InstanceQuotaExceeded"
        );
        assert_eq!(
            k("VpcLimitExceeded", "too many VPCs", 400).0,
            ErrorKind::QuotaExceeded
        );
        assert_eq!(
            k("TooManyHealthChecks", "max", 400).0,
            ErrorKind::QuotaExceeded
        );
        assert_eq!(
            k("LimitExceededException", "max secrets", 400).0,
            ErrorKind::QuotaExceeded
        );
    }

    #[test]
    fn throttling_is_one_retryable_code() {
        for code in [
            "Throttling",
            "ThrottlingException",
            "RequestLimitExceeded",
            "PriorRequestNotComplete",
            "TooManyRequestsException",
        ] {
            let e = classify(code, "Rate exceeded", Some(400));
            assert_eq!(
                (e.kind, e.code.as_str(), e.retryable),
                (ErrorKind::Throttling, "Throttling", true),
                "{code}"
            );
            if code != "Throttling" {
                assert!(
                    e.message.starts_with(code),
                    "original code kept: {}",
                    e.message
                );
            }
        }
    }

    #[test]
    fn access_denied_family() {
        for code in [
            "AccessDenied",
            "AccessDeniedException",
            "UnauthorizedOperation",
            "AuthFailure",
            "InvalidClientTokenId",
            "OptInRequired",
        ] {
            assert_eq!(
                k(code, "no", 403),
                (ErrorKind::AccessDenied, "AccessDenied".into(), false),
                "{code}"
            );
        }
    }

    #[test]
    fn ec2_and_route53_and_others() {
        assert_eq!(k("InvalidVpcID.NotFound", "x", 400).0, ErrorKind::NotFound);
        assert_eq!(
            k("InvalidVpcPeeringConnectionID.NotFound", "x", 400).0,
            ErrorKind::NotFound
        );
        assert_eq!(
            k("InvalidPermission.Duplicate", "x", 400).0,
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            k("DependencyViolation", "x", 400).0,
            ErrorKind::DependencyViolation
        );
        assert_eq!(
            k("InvalidStateTransition", "x", 400).0,
            ErrorKind::InvalidState
        );
        // Peering between overlapping CIDRs is refused as a bad parameter.
        assert_eq!(
            k(
                "InvalidVpcPeeringConnection.OverlappingCidr",
                "overlapping CIDR",
                400
            ),
            (
                ErrorKind::InvalidParameter,
                "InvalidVpcPeeringConnection.OverlappingCidr".into(),
                false
            )
        );
        assert_eq!(k("NoSuchHostedZone", "x", 404).0, ErrorKind::NotFound);
        assert_eq!(
            k("HostedZoneNotEmpty", "x", 400).0,
            ErrorKind::DependencyViolation
        );
        assert_eq!(
            k("HostedZoneAlreadyExists", "x", 409).0,
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            k("InvalidChangeBatch", "x", 400).0,
            ErrorKind::InvalidParameter
        );
        assert_eq!(
            k("ResourceNotFoundException", "x", 400).0,
            ErrorKind::NotFound
        );
        assert_eq!(
            k("ResourceExistsException", "x", 400).0,
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            k("InvalidRequestException", "scheduled for deletion", 400).0,
            ErrorKind::InvalidState
        );
        assert_eq!(
            k("ResourceNotFound", "dashboard", 404).0,
            ErrorKind::NotFound
        );
        assert_eq!(
            k("NotFound", "Topic does not exist", 404).0,
            ErrorKind::NotFound
        );
    }

    #[test]
    fn server_errors_are_retryable() {
        assert_eq!(
            k("InternalFailure", "x", 500),
            (ErrorKind::Unavailable, "InternalFailure".into(), true)
        );
        assert_eq!(
            k("", "x", 503),
            (ErrorKind::Unavailable, "ServiceUnavailable".into(), true)
        );
        assert_eq!(classify("", "x", None).kind, ErrorKind::Internal);
    }

    #[test]
    fn credentials_messages_say_how_to_configure() {
        assert!(is_credentials_error(
            "dispatch failure: other: no providers in chain provided credentials"
        ));
        let e = credentials_error("x");
        assert_eq!(e.kind, ErrorKind::AccessDenied);
        assert!(e.message.contains("AWS_ACCESS_KEY_ID") && e.message.contains("AWS_PROFILE"));
    }
}
