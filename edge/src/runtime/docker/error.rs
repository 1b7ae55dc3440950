//! From bollard's errors to [`RuntimeError`]: what is worth retrying (`Engine`) and what
//! the same spec will never get past (`Unrunnable`).

use std::fmt::Display;

use bollard::errors::Error;

use super::super::RuntimeError;

/// The engine's HTTP status and message, for an error the engine answered.
pub fn status(e: &Error) -> Option<(u16, &str)> {
    match e {
        Error::DockerResponseServerError {
            status_code,
            message,
        } => Some((*status_code, message.as_str())),
        _ => None,
    }
}

/// The engine answered 404.
pub fn not_found(e: &Error) -> bool {
    matches!(status(e), Some((404, _)))
}

/// A transient failure: `what` failed, try again later.
pub fn engine(what: impl Display, e: &Error) -> RuntimeError {
    RuntimeError::Engine(format!("{what}: {}", message(e)))
}

/// The engine's own message when it gave one, bollard's otherwise.
fn message(e: &Error) -> String {
    match status(e) {
        Some((code, m)) => format!("{m} (engine answered {code})"),
        None => e.to_string(),
    }
}

/// Messages that mean the spec cannot run on this node as it is: a host port that is
/// taken, a command, bind source or device that does not exist, an image that is missing.
const UNRUNNABLE: [&str; 9] = [
    "port is already allocated",
    "address already in use",
    "executable file not found",
    "no such file or directory",
    "bind source path does not exist",
    "error gathering device information",
    "invalid mount config",
    "no such image",
    "permission denied",
];

/// The engine could not publish a host port: something else holds it.
pub fn port_clash(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    m.contains("port is already allocated") || m.contains("address already in use")
}

fn unrunnable_message(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    UNRUNNABLE.iter().any(|p| m.contains(p))
}

/// A failed container create: a refused config (400) or a missing image is unrunnable;
/// anything else (a network that is not there yet, a name conflict) is retried.
pub fn create(what: impl Display, e: &Error) -> RuntimeError {
    match status(e) {
        Some((400, _)) => RuntimeError::Unrunnable(format!("{what}: {}", message(e))),
        Some((_, m)) if unrunnable_message(m) => {
            RuntimeError::Unrunnable(format!("{what}: {}", message(e)))
        }
        _ => engine(what, e),
    }
}

/// A failed container start: a port that is taken, a command, bind source or device
/// that does not exist is unrunnable; anything else is retried.
pub fn start(what: impl Display, e: &Error) -> RuntimeError {
    match status(e) {
        Some((_, m)) if unrunnable_message(m) => {
            RuntimeError::Unrunnable(format!("{what}: {}", message(e)))
        }
        _ => engine(what, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: u16, message: &str) -> Error {
        Error::DockerResponseServerError {
            status_code: code,
            message: message.to_owned(),
        }
    }

    #[test]
    fn port_in_use_is_unrunnable_and_says_why() {
        let e = server(
            500,
            "driver failed programming external connectivity on endpoint x: \
             Bind for 0.0.0.0:18080 failed: port is already allocated",
        );
        let RuntimeError::Unrunnable(m) = start("start skerry-a.web.0", &e) else {
            panic!("not unrunnable");
        };
        assert!(m.contains("18080"), "{m}");
        assert!(m.starts_with("start skerry-a.web.0: "), "{m}");
    }

    #[test]
    fn missing_binary_is_unrunnable() {
        let e = server(
            400,
            "OCI runtime create failed: exec: \"/bin/nope\": stat /bin/nope: no such file or directory",
        );
        assert!(matches!(start("start", &e), RuntimeError::Unrunnable(_)));
    }

    #[test]
    fn create_refusals() {
        assert!(matches!(
            create(
                "create",
                &server(400, "invalid mount config for type \"bind\"")
            ),
            RuntimeError::Unrunnable(_)
        ));
        assert!(matches!(
            create("create", &server(404, "No such image: nope:1")),
            RuntimeError::Unrunnable(_)
        ));
        assert!(matches!(
            create("create", &server(404, "network skerry-a not found")),
            RuntimeError::Engine(_)
        ));
        assert!(matches!(
            create(
                "create",
                &server(409, "Conflict. The container name is already in use")
            ),
            RuntimeError::Engine(_)
        ));
    }

    #[test]
    fn other_errors_are_transient() {
        assert!(matches!(
            engine("list", &server(500, "boom")),
            RuntimeError::Engine(_)
        ));
        assert!(not_found(&server(404, "no such container")));
        assert!(!not_found(&server(500, "x")));
    }
}
