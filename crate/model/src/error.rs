//! The error type of this crate.

use std::fmt;
use std::path::PathBuf;

/// What went wrong while loading, saving or running a model.
///
/// Every variant names the file, the tensor or the field concerned, so that the message alone
/// tells the user what to fix.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A file could not be read or written.
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `config.json` is not valid JSON, or a field has the wrong type or value.
    Config {
        /// The file concerned.
        path: PathBuf,
        /// The field (JSON path) concerned, when known.
        field: String,
        /// A description of the problem.
        message: String,
    },
    /// A safetensors file is truncated or corrupt.
    Safetensors {
        /// The file concerned.
        path: PathBuf,
        /// A description of the problem.
        message: String,
    },
    /// The model expects a tensor that no weight file holds.
    MissingTensor {
        /// The Hugging Face name of the tensor.
        name: String,
    },
    /// A weight file holds a tensor that the model does not use.
    UnexpectedTensor {
        /// The Hugging Face name of the tensor.
        name: String,
        /// The file holding it.
        path: PathBuf,
    },
    /// A tensor has a shape other than the one the config implies.
    ShapeMismatch {
        /// The Hugging Face name of the tensor.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape found in the file.
        found: Vec<usize>,
    },
    /// A tensor has a dtype other than f32, f16 or bf16.
    UnsupportedDtype {
        /// The Hugging Face name of the tensor.
        name: String,
        /// The dtype found in the file.
        dtype: String,
    },
    /// The tokenizer cannot be loaded or trained, or does not match the model.
    Tokenizer {
        /// The file concerned, when there is one.
        path: Option<PathBuf>,
        /// A description of the problem.
        message: String,
    },
    /// Invalid input or arguments (token ids out of range, empty corpus, bad flags, ...).
    Invalid(String),
}

/// The error type of `ward-model`: an opaque wrapper around an [`ErrorKind`].
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
}

impl Error {
    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// True when a tensor was missing, unexpected or misshapen.
    pub fn is_tensor_mismatch(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::MissingTensor { .. }
                | ErrorKind::UnexpectedTensor { .. }
                | ErrorKind::ShapeMismatch { .. }
                | ErrorKind::UnsupportedDtype { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ErrorKind::Io {
            path: path.into(),
            source,
        }
        .into()
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        ErrorKind::Invalid(message.into()).into()
    }

    pub(crate) fn tokenizer(path: Option<PathBuf>, message: impl Into<String>) -> Self {
        ErrorKind::Tokenizer {
            path,
            message: message.into(),
        }
        .into()
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error { kind }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ErrorKind::Config {
                path,
                field,
                message,
            } => {
                if field.is_empty() || field == "." {
                    write!(f, "{}: invalid config: {message}", path.display())
                } else {
                    write!(
                        f,
                        "{}: invalid config field `{field}`: {message}",
                        path.display()
                    )
                }
            }
            ErrorKind::Safetensors { path, message } => {
                write!(
                    f,
                    "{}: truncated or corrupt safetensors file: {message}",
                    path.display()
                )
            }
            ErrorKind::MissingTensor { name } => {
                write!(f, "missing tensor `{name}` in the weight files")
            }
            ErrorKind::UnexpectedTensor { name, path } => write!(
                f,
                "{}: unexpected tensor `{name}` (the model has no such parameter)",
                path.display()
            ),
            ErrorKind::ShapeMismatch {
                name,
                expected,
                found,
            } => write!(
                f,
                "tensor `{name}` has shape {found:?}, but the config implies {expected:?}"
            ),
            ErrorKind::UnsupportedDtype { name, dtype } => write!(
                f,
                "tensor `{name}` has dtype {dtype}; only F32, F16 and BF16 are supported"
            ),
            ErrorKind::Tokenizer { path, message } => match path {
                Some(p) => write!(f, "{}: tokenizer: {message}", p.display()),
                None => write!(f, "tokenizer: {message}"),
            },
            ErrorKind::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The result type of `ward-model`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
