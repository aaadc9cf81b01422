//! Connecting to a cluster: which kubeconfig and context, the client, and errors that say which
//! context and server were meant and what to do.

use std::path::{Path, PathBuf};

use crate::cluster::Connection;
use crate::errors::root_cause;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Where regops is connecting, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The kubeconfig context, or `None` in-cluster.
    pub context: Option<String>,
    pub server: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.context {
            Some(c) => write!(f, "{} (context `{c}`)", self.server),
            None => write!(f, "{} (in-cluster service account)", self.server),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    #[error("cannot read kubeconfig {path}: {detail}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        detail: KubeconfigReadError,
    },
    #[error("context `{context}` is not in {path}")]
    NoSuchContext {
        context: String,
        path: PathBuf,
        available: Vec<String>,
    },
    #[error("no kubeconfig found and not running in a cluster")]
    NoConfig,
    #[error("cannot use the cluster configuration: {0}")]
    Config(String),
    #[error("cannot reach the cluster at {target}: {detail}")]
    Unreachable { target: Target, detail: String },
    #[error("the cluster at {target} refused the credentials (401 Unauthorized)")]
    Unauthorized { target: Target },
    #[error("the cluster at {target} denied `{verb}` on {resource}{scope}")]
    Forbidden {
        target: Target,
        verb: String,
        resource: String,
        group: String,
        scope: String,
    },
    #[error("the cluster at {target} answered {code} {reason}: {message}")]
    Api {
        target: Target,
        code: u16,
        reason: String,
        message: String,
    },
    /// A LIST went past one of [`crate::cluster::read::ListLimits`].
    #[error("the API server's LIST of {resource} at {target} {exceeded}")]
    ListLimit {
        target: Target,
        resource: String,
        exceeded: crate::cluster::read::Exceeded,
    },
}

impl ClusterError {
    pub fn help(&self) -> Option<String> {
        match self {
            ClusterError::NoSuchContext { available, .. } if available.is_empty() => Some("the kubeconfig defines no contexts".into()),
            ClusterError::NoSuchContext { available, .. } => Some(format!("available contexts: {}", regops_spec::untrusted::terminal(&available.join(", ")))),
            ClusterError::NoConfig => Some("pass --kubeconfig FILE, set KUBECONFIG, or run in a pod with a service account".into()),
            ClusterError::Unreachable { .. } => Some("check the server address and that the cluster is up (`kubectl cluster-info` with the same kubeconfig)".into()),
            ClusterError::Unauthorized { .. } => Some("the token or certificate in the kubeconfig is missing, expired or wrong".into()),
            ClusterError::Forbidden { verb, resource, group, .. } => Some(format!(
                "a Role or ClusterRole rule that allows it:\n  - apiGroups: [\"{group}\"]\n    resources: [\"{resource}\"]\n    verbs: [\"{verb}\"]"
            )),
            _ => None,
        }
    }
}

/// A runtime for the commands that talk to a cluster (one thread: the work is waiting on the
/// API server, and the concurrency is bounded by the flags, not by threads).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, crate::failure::Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::failure::Failure::caused("cannot start the async runtime", e))
}

/// Connects as the flags say (`--kubeconfig`, `--context`), on `rt`, with the run's context.
pub(crate) fn connect_as(
    flags: &ClusterOptions,
    ctx: &crate::context::RunContext,
    rt: &tokio::runtime::Runtime,
) -> Result<(Connection, Target), crate::failure::Failure> {
    let (client, target) = rt.block_on(connect(
        flags.kubeconfig.as_deref(),
        flags.context.as_deref(),
    ))?;
    Ok((Connection::new(client, ctx.clone()), target))
}

/// How the lock's renewal connects on its own thread (a client is driven by the runtime it
/// was built on): to `context` of `kubeconfig`, as [`connect`] does.
pub(crate) fn lock_connect(
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
) -> crate::cluster::lock::Connect {
    Box::new(move || {
        Box::pin(async move {
            connect(kubeconfig.as_deref(), context.as_deref())
                .await
                .ok()
                .map(|(client, _)| client)
        })
    })
}

/// Reads the kubeconfig (`--kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`), or the
/// in-cluster service account when there is none, and builds a client.
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<(kube::Client, Target), ClusterError> {
    let path = kubeconfig
        .map(Path::to_path_buf)
        .or_else(default_kubeconfig);
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let (config, target_context) = match path {
        Some(path) => {
            let mut kc = read_kubeconfig(&path).map_err(|detail| ClusterError::Kubeconfig {
                path: path.clone(),
                detail,
            })?;
            withhold_keys_from_plugins(&mut kc);
            let chosen = context
                .map(str::to_string)
                .or_else(|| kc.current_context.clone());
            if let Some(c) = &chosen
                && !kc.contexts.iter().any(|nc| nc.name == *c)
            {
                let available = kc.contexts.iter().map(|nc| nc.name.clone()).collect();
                return Err(ClusterError::NoSuchContext {
                    context: c.clone(),
                    path,
                    available,
                });
            }
            let config = kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| ClusterError::Config(e.to_string()))?;
            (config, chosen)
        }
        None => {
            if context.is_some() {
                return Err(ClusterError::NoConfig);
            }
            (
                kube::Config::incluster().map_err(|_| ClusterError::NoConfig)?,
                None,
            )
        }
    };
    let target = Target {
        context: target_context,
        server: config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string(),
    };
    // kube retries 429/503/504 in its own layer by default; regops has one retry policy for
    // every request (crate::cluster::retry: Retry-After, jitter, timeouts, dropped connections), and
    // two stacked would multiply attempts and hide them from the request log.
    let mut config = config;
    config.default_retry = false;
    // Who is asking, as kubectl says it: the API server's audit log (and the test server's
    // request log) names the process behind each request, so two replicas' writes can be told
    // apart.
    if let Ok(agent) = hyper::header::HeaderValue::from_str(&format!(
        "regops/{} ({})",
        env!("CARGO_PKG_VERSION"),
        crate::cluster::lock::holder_identity()
    )) {
        config.headers.push((hyper::header::USER_AGENT, agent));
    }
    let client = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| ClusterError::Config(e.to_string()))?
        .with_layer(&crate::cluster::request_log::RequestLog)
        .build();
    Ok((client, target))
}

/// A kubeconfig file, read if it is a regular file within [`crate::inputs::confined::KUBECONFIG_LIMIT`]
/// (relative paths in it resolved against its directory, as kubectl does).
fn read_kubeconfig(path: &Path) -> Result<Kubeconfig, KubeconfigReadError> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(KubeconfigReadError::NotAFile);
    }
    if meta.len() > crate::inputs::confined::KUBECONFIG_LIMIT {
        return Err(KubeconfigReadError::TooLarge);
    }
    Kubeconfig::read_from(path).map_err(|e| match &e {
        // The parser's message quotes the file (an excerpt of the line, `token: …` included):
        // only where and what kind of error is said, and the parser's error is not kept.
        kube::config::KubeconfigError::Parse(parse) => {
            KubeconfigReadError::Invalid(yaml_failure(parse))
        }
        _ => KubeconfigReadError::Kube(e),
    })
}

/// Why a kubeconfig file cannot be read, said after "cannot read FILE": never what it holds.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigReadError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("it is not a regular file")]
    NotAFile,
    #[error(
        "it is larger than the {} MiB limit",
        crate::inputs::confined::KUBECONFIG_LIMIT >> 20
    )]
    TooLarge,
    /// Where the YAML is wrong and what kind of error, never the parser's excerpt of the line.
    #[error("it is not a valid kubeconfig: {0}")]
    Invalid(regops_spec::masked::ParseFailure),
    /// Anything else kube says of the file, by its root cause.
    #[error("{}", root_cause(.0))]
    Kube(#[source] kube::config::KubeconfigError),
}

/// A spec's kubeconfig that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct SpecKubeconfigError {
    path: PathBuf,
    #[source]
    source: KubeconfigReadError,
}

/// A YAML parse error of a file that may hold a secret: its line and column, and its kind
/// from the error's variant, never the text it quotes (its `Display` and `Debug` both show an
/// excerpt of the file; see [`regops_spec::masked`]).
pub(crate) fn yaml_failure(err: &serde_saphyr::Error) -> regops_spec::masked::ParseFailure {
    use serde_saphyr::Error as E;
    let err = err.without_snippet();
    // `expected` is the type's own words (`a sequence`), kept where they quote nothing.
    let expecting = |what: &str, expected: &str| {
        if regops_spec::masked::parser_words(expected) {
            format!("{what} (expected {expected})")
        } else {
            what.to_string()
        }
    };
    let kind = match err {
        E::Message { msg, .. } => {
            regops_spec::masked::serde_kind(msg, "a value of the wrong shape")
        }
        E::SerdeInvalidType { expected, .. } => expecting("a value of the wrong type", expected),
        E::Unexpected { expected, .. } => expecting("a value of the wrong type", expected),
        E::SerdeInvalidValue { expected, .. } => expecting("an invalid value", expected),
        E::SerdeInvalidLength { expected, .. } => {
            expecting("a list or map of the wrong length", expected)
        }
        E::SerdeUnknownVariant { .. } => "an unknown variant".to_string(),
        E::SerdeUnknownField { .. } => "an unknown field".to_string(),
        // The field's name is the program's, not the file's.
        E::SerdeMissingField { field, .. } => format!("missing field `{field}`"),
        E::DuplicateMappingKey { .. } => "a key given twice".to_string(),
        E::Eof { .. } => "the file ends too early".to_string(),
        // The YAML scanner's own message may quote the character it stopped at.
        _ => "malformed YAML".to_string(),
    };
    let location = err.location();
    regops_spec::masked::ParseFailure {
        line: location
            .and_then(|l| usize::try_from(l.line()).ok())
            .filter(|l| *l > 0),
        column: location
            .and_then(|l| usize::try_from(l.column()).ok())
            .filter(|c| *c > 0),
        kind,
    }
}

/// Every `exec` and `auth-provider` plugin of `kc` is started with the allowlist of regops'
/// environment ([`crate::inputs::child_env`]): kube only removes variables (`drop_env`, applied after
/// it sets `exec.env` and `KUBERNETES_EXEC_INFO`), so every other variable of this process is
/// named, and those two are kept.
fn withhold_keys_from_plugins(kc: &mut Kubeconfig) {
    for named in &mut kc.auth_infos {
        let Some(auth) = named.auth_info.as_mut() else {
            continue;
        };
        if let Some(exec) = auth.exec.as_mut() {
            let program = exec.command.clone().unwrap_or_default();
            // Only an entry with a value replaces the variable (kube sets an entry only when it
            // has both, as client-go does); a name alone must not keep the job's own.
            let mut keep: Vec<&str> = exec
                .env
                .iter()
                .flatten()
                .filter(|e| e.contains_key("value"))
                .filter_map(|e| e.get("name").map(String::as_str))
                .collect();
            keep.push(crate::inputs::child_env::EXEC_INFO);
            let dropped = crate::inputs::child_env::dropped_vars(&program, &keep);
            exec.drop_env = Some(dropped);
        }
        if let Some(provider) = auth.auth_provider.as_mut()
            && let Some(program) = provider.config.get("cmd-path").cloned()
        {
            // kube splits this on spaces; a name with one (possible, never seen) is dropped by
            // its parts only.
            provider.config.insert(
                "cmd-drop-env".into(),
                crate::inputs::child_env::dropped_vars(&program, &[]).join(" "),
            );
        }
    }
}

/// Why the kubeconfig at `path`, named by the spec, may not be used for `context`: its user
/// runs a program (`exec`, `auth-provider`), or its cluster skips TLS verification or is
/// served over plain `http://`, loopback included (unless `allow_exec`), or a file it names is outside `root` (when given: the load restrictor). The
/// operator's own kubeconfig is never checked so.
pub fn spec_kubeconfig_refusals(
    path: &Path,
    context: &str,
    root: Option<&Path>,
    allow_exec: bool,
) -> Result<Vec<String>, SpecKubeconfigError> {
    let kc = read_kubeconfig(path).map_err(|source| SpecKubeconfigError {
        path: path.to_path_buf(),
        source,
    })?;
    let mut why = Vec::new();
    let Some(ctx) = kc
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
    else {
        // Reported when connecting, with the contexts there are.
        return Ok(why);
    };
    let mut files: Vec<(&str, &String)> = Vec::new();
    if let Some(cluster) = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.as_ref())
    {
        if cluster.insecure_skip_tls_verify == Some(true) && !allow_exec {
            why.push(format!(
                "its cluster `{}` skips TLS verification (insecure-skip-tls-verify), so any server could stand in for it",
                ctx.cluster
            ));
        }
        // Plain HTTP, loopback included: its token would cross in clear, and anything on the
        // path (or any local process on the port) could answer as the cluster.
        let plain_http = cluster.server.as_deref().is_some_and(|s| {
            s.trim_start()
                .get(..7)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
        });
        if plain_http && !allow_exec {
            why.push(format!(
                "its cluster `{}` is served over plain HTTP (`http://`), so its credentials would cross in clear and any server could stand in for it",
                ctx.cluster
            ));
        }
        files.extend(
            cluster
                .certificate_authority
                .iter()
                .map(|f| ("certificate-authority", f)),
        );
    }
    let user = ctx.user.as_deref().unwrap_or_default();
    if let Some(auth) = kc
        .auth_infos
        .iter()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.as_ref())
    {
        if !allow_exec {
            if let Some(exec) = &auth.exec {
                why.push(format!(
                    "its user `{user}` runs a program (exec: `{}`)",
                    exec.command.as_deref().unwrap_or("?")
                ));
            }
            if let Some(p) = &auth.auth_provider {
                why.push(format!(
                    "its user `{user}` uses the `{}` auth-provider, which may run a program",
                    p.name
                ));
            }
        }
        files.extend(auth.token_file.iter().map(|f| ("tokenFile", f)));
        files.extend(
            auth.client_certificate
                .iter()
                .map(|f| ("client-certificate", f)),
        );
        files.extend(auth.client_key.iter().map(|f| ("client-key", f)));
    }
    if let Some(root) = root {
        for (field, file) in files {
            let p = Path::new(file);
            if let Err(e) = regops_spec::trust::confine(root, p, p) {
                why.push(format!("its {field} {e}"));
            }
        }
    }
    Ok(why)
}

fn default_kubeconfig() -> Option<PathBuf> {
    if let Some(env) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        // Several paths may be listed; regops reads the first that exists.
        return std::env::split_paths(&env).find(|p| p.is_file());
    }
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    Some(home.join(".kube/config")).filter(|p| p.is_file())
}

/// A request's failure, in terms of what was being done.
pub fn api_error(
    err: kube::Error,
    target: &Target,
    verb: &str,
    resource: &str,
    group: &str,
    namespace: Option<&str>,
) -> ClusterError {
    let scope = namespace.map_or_else(
        || " at the cluster scope".to_string(),
        |n| format!(" in namespace `{n}`"),
    );
    match err {
        kube::Error::Api(status) => match status.code {
            401 => ClusterError::Unauthorized {
                target: target.clone(),
            },
            403 => ClusterError::Forbidden {
                target: target.clone(),
                verb: verb.into(),
                resource: resource.into(),
                group: group.into(),
                scope,
            },
            code => ClusterError::Api {
                target: target.clone(),
                code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
        },
        other => ClusterError::Unreachable {
            target: target.clone(),
            detail: root_cause(&other),
        },
    }
}

/// What `regops cluster-info` reports.
pub struct Info {
    pub target: Target,
    pub version: String,
    pub namespaces: usize,
}

/// Connects, asks for the version and counts namespaces (one paged LIST of metadata).
pub async fn info(flags: &ClusterOptions) -> Result<Info, ClusterError> {
    let (client, target) = connect(flags.kubeconfig.as_deref(), flags.context.as_deref()).await?;
    let conn = Connection::new(client, flags.run_context());
    let version = conn
        .client
        .apiserver_version()
        .await
        .map_err(|e| api_error(e, &target, "get", "version", "", None))?;
    let count = crate::cluster::read::count_namespaces(&conn, &target).await?;
    Ok(Info {
        target,
        version: version.git_version,
        namespaces: count,
    })
}

/// Which cluster, and how long regops waits on it.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The kubeconfig (else `$KUBECONFIG`, `~/.kube/config`, in-cluster).
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Its context (else its current context).
    pub context: Option<String>,
    /// How long one request may take before it is abandoned and retried.
    pub request_timeout: std::time::Duration,
    /// How long a cluster never reached is retried; `None`: as long as the retries go (the
    /// controller).
    pub connect_timeout: Option<std::time::Duration>,
    /// The limits on each LIST and watch.
    pub list_limits: crate::context::ListLimits,
}

impl ClusterOptions {
    /// The context of a run with these options, on the system clock.
    pub fn run_context(&self) -> crate::context::RunContext {
        crate::context::RunContext {
            clock: crate::clock::system(),
            request_timeout: self.request_timeout,
            connect_budget: self.connect_timeout,
            list_limits: self.list_limits,
        }
    }
}
