//! One function per subcommand: read input, call the pure parts, hand results to [`Term`].

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use regops_spec::{Diagnostic, Diagnostics, Loaded, SecretSource, Sources};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::ExitStatus;
use crate::cli::{ApplyArgs, ReportFormat};
use crate::cli::{
    CheckArgs, ClusterArgs, Command, EncryptArgs, KeygenArgs, OutputFormat, PlanArgs, RekeyArgs,
    RenderArgs,
};
use crate::credentials::{self, Login};
use crate::crypto::{self, IdentityLookup};
use crate::edit::{self, NewPassword};
use crate::manifest::{self, Targets};
use crate::output::Term;

/// Why a command failed, ready to be shown.
pub enum Failure {
    /// Problems located in the spec.
    Spec {
        sources: Sources,
        diagnostics: Diagnostics,
    },
    /// Anything else: a message and what to do about it.
    Message {
        message: String,
        help: Option<String>,
    },
}

impl Failure {
    fn msg(message: impl Into<String>) -> Self {
        Failure::Message {
            message: message.into(),
            help: None,
        }
    }

    fn report(self, term: &Term) {
        match self {
            Failure::Spec {
                sources,
                diagnostics,
            } => {
                term.diagnostics(&diagnostics, &sources);
                let n = diagnostics.error_count();
                term.note(&format!(
                    "regops: {n} error{} in the spec; nothing was done",
                    if n == 1 { "" } else { "s" }
                ));
            }
            Failure::Message { message, help } => {
                let mut d = Diagnostics::default();
                d.push(Diagnostic::error("", message).with_help_opt(help));
                term.diagnostics(&d, &Sources::default());
            }
        }
    }
}

type Outcome = Result<ExitStatus, Failure>;

fn env_var(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

pub fn run(command: Command, term: Term) -> ExitStatus {
    let result = match command {
        Command::Check(a) => check(a, &term),
        Command::Render(a) => render(a, &term),
        Command::Keygen(a) => keygen(a, &term),
        Command::Encrypt(a) => encrypt(a, &term),
        Command::Rekey(a) => rekey(a, &term),
        Command::ClusterInfo(a) => cluster_info(a, &term),
        Command::Plan(a) => plan(a, &term),
        Command::Apply(a) => apply(a, &term),
        Command::Drift(a) => drift(a, &term),
        Command::Validate(a) => validate(a, &term),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut crate::cli::Cli::command(), "regops", &mut out);
            term.stdout(&String::from_utf8_lossy(&out));
            Ok(ExitStatus::Success)
        }
        Command::Man => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            match clap_mangen::Man::new(crate::cli::Cli::command()).render(&mut out) {
                Ok(()) => {
                    term.stdout(&String::from_utf8_lossy(&out));
                    Ok(ExitStatus::Success)
                }
                Err(e) => Err(Failure::msg(format!("cannot render the man page: {e}"))),
            }
        }
        Command::Schema { which } => {
            term.stdout(&match which {
                crate::cli::SchemaKind::Spec => regops_spec::schema::json_schema(),
                crate::cli::SchemaKind::Plan => regops_core::view::json_schema(),
            });
            Ok(ExitStatus::Success)
        }
    };
    result.unwrap_or_else(|f| {
        f.report(&term);
        ExitStatus::Failure
    })
}

fn read_sources(files: &[PathBuf]) -> Result<Sources, Failure> {
    regops_spec::source::read_paths(files).map_err(|e| Failure::msg(e.to_string()))
}

fn default_name(files: &[PathBuf]) -> String {
    let first = files
        .first()
        .map(PathBuf::as_path)
        .unwrap_or(Path::new("regops"));
    let stem = if first.is_dir() {
        first
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_os_string()))
    } else {
        first.file_stem().map(|s| s.to_os_string())
    };
    stem.map_or_else(|| "regops".into(), |s| s.to_string_lossy().to_string())
}

/// Reads, parses and validates the spec (recipients included), printing warnings.
fn load(files: &[PathBuf], term: &Term) -> Result<Loaded, Failure> {
    let sources = read_sources(files)?;
    let mut loaded =
        regops_spec::load(sources, &default_name(files)).map_err(|inv| Failure::Spec {
            sources: inv.sources,
            diagnostics: inv.diagnostics,
        })?;
    if let Err(d) = crypto::parse_recipients(&loaded.spec.recipients) {
        let mut all = d;
        all.extend(std::mem::take(&mut loaded.warnings));
        return Err(Failure::Spec {
            sources: loaded.sources,
            diagnostics: all,
        });
    }
    term.diagnostics(&loaded.warnings, &loaded.sources);
    Ok(loaded)
}

fn resolve_logins(
    loaded: &Loaded,
    identity_files: &[PathBuf],
    wanted: Option<&[&str]>,
) -> Result<BTreeMap<String, Login>, Failure> {
    let lookup = IdentityLookup {
        files: identity_files,
        env: &env_var,
    };
    credentials::resolve(&loaded.spec, &loaded.sources, &lookup, &env_var, wanted).map_err(
        |diagnostics| Failure::Spec {
            sources: loaded.sources.clone(),
            diagnostics,
        },
    )
}

fn check(args: CheckArgs, term: &Term) -> Outcome {
    let loaded = load(&args.spec.files, term)?;
    let spec = &loaded.spec;
    let decrypted = if args.no_decrypt {
        None
    } else {
        Some(resolve_logins(&loaded, &args.identity.identity, None)?.len())
    };
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    let mut summary = format!(
        "spec `{}` is valid: {}, {}, {}, {}, {}",
        loaded.name,
        plural(spec.registries.len(), "registry").replace("registrys", "registries"),
        plural(spec.credentials.len(), "credential"),
        plural(spec.scopes.len(), "scope"),
        plural(spec.pull_secrets.len(), "pull secret"),
        plural(spec.bindings.len(), "binding"),
    );
    if let Some(n) = decrypted {
        summary.push_str(&format!(
            "; {n} of {} credentials readable",
            spec.credentials.len()
        ));
    }
    term.note(&summary);
    Ok(ExitStatus::Success)
}

fn render(args: RenderArgs, term: &Term) -> Outcome {
    let loaded = load(&args.spec.files, term)?;
    let spec = &loaded.spec;
    if args.namespaces.is_empty() {
        for scope in spec.scopes.values().filter(|s| manifest::is_dynamic(s)) {
            term.note(&format!(
                "note: scope `{}` also selects namespaces by label, Rancher project or KubeSphere workspace, which needs a cluster; showing only the namespaces it names (pass --namespaces to choose)",
                scope.name.value
            ));
        }
    }
    for ns in &args.namespaces {
        regops_spec::rules::dns1123_label(ns).map_err(|why| {
            Failure::msg(format!(
                "--namespaces: `{ns}` is not a namespace name: it {why}"
            ))
        })?;
    }
    let used: Vec<&str> = spec
        .pull_secrets
        .values()
        .flat_map(|p| p.registries.iter())
        .filter_map(|r| spec.registries.get(r.as_str()))
        .map(|r| r.credential.as_str())
        .collect();
    let logins = resolve_logins(&loaded, &args.identity.identity, Some(&used))?;
    let targets = Targets {
        namespaces: (!args.namespaces.is_empty()).then_some(args.namespaces.as_slice()),
    };
    let objects = manifest::pull_secrets(&loaded, &logins, &targets);
    if objects.is_empty() {
        term.note("nothing to render: no pull secret has a namespace in scope");
        return Ok(ExitStatus::Success);
    }
    term.stdout(&manifest::to_yaml(
        &objects,
        &loaded.name,
        args.show_secrets,
    ));
    Ok(ExitStatus::Success)
}

fn keygen(args: KeygenArgs, term: &Term) -> Outcome {
    if let Some(path) = args.public {
        let text = std::fs::read_to_string(&path)
            .map(Zeroizing::new)
            .map_err(|e| Failure::msg(format!("cannot read {}: {e}", path.display())))?;
        let mut found = 0;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
        {
            let id: age::x25519::Identity = line.parse().map_err(|_| {
                Failure::msg(format!("{} has an invalid identity line", path.display()))
            })?;
            term.stdout(&format!("{}\n", id.to_public()));
            found += 1;
        }
        if found == 0 {
            return Err(Failure::msg(format!(
                "{} holds no age identity",
                path.display()
            )));
        }
        return Ok(ExitStatus::Success);
    }
    let id = crypto::generate_identity();
    let content = Zeroizing::new(format!(
        "# created: {}\n# public key: {}\n{}\n",
        rfc3339_now(),
        id.public,
        id.secret.expose_secret()
    ));
    match args.output {
        Some(path) => {
            write_private(&path, &content)
                .map_err(|e| Failure::msg(format!("cannot create {}: {e}", path.display())))?;
            term.note(&format!("Public key: {}", id.public));
        }
        None => {
            term.stdout(&content);
            if !std::io::stdout().is_terminal() {
                term.note(&format!("Public key: {}", id.public));
            }
        }
    }
    Ok(ExitStatus::Success)
}

/// Creates a new file readable only by its owner; an existing file is never overwritten.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = opts.open(path)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()
}

fn rfc3339_now() -> String {
    // Seconds precision, as age-keygen writes it.
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Reads the new secret: from the terminal without echo (asked twice), or all of standard input.
fn read_new_secret(credential: &str) -> Result<SecretString, Failure> {
    let stdin = std::io::stdin();
    let value = if stdin.is_terminal() {
        let first = Zeroizing::new(
            rpassword::prompt_password(format!("Password for credential `{credential}`: "))
                .map_err(|e| Failure::msg(format!("cannot read the password: {e}")))?,
        );
        let again = Zeroizing::new(
            rpassword::prompt_password("Again: ")
                .map_err(|e| Failure::msg(format!("cannot read the password: {e}")))?,
        );
        if *first != *again {
            return Err(Failure::msg(
                "the two passwords differ; nothing was written",
            ));
        }
        first
    } else {
        let mut buf = Zeroizing::new(String::new());
        stdin
            .lock()
            .take(64 * 1024)
            .read_to_string(&mut buf)
            .map_err(|e| {
                Failure::msg(format!("cannot read the password from standard input: {e}"))
            })?;
        if buf.ends_with('\n') {
            buf.pop();
            if buf.ends_with('\r') {
                buf.pop();
            }
        }
        buf
    };
    if value.is_empty() {
        return Err(Failure::msg("the password is empty; nothing was written"));
    }
    Ok(SecretString::from(value.as_str().to_owned()))
}

fn encrypt(args: EncryptArgs, term: &Term) -> Outcome {
    let sources = read_sources(&args.spec.files)?;
    let (file, cred_node) =
        edit::find_credential(&sources, &args.credential).map_err(|e| Failure::Message {
            message: e.to_string(),
            help: Some(format!(
                "add it first:\n  credentials:\n    {}:\n      username: <user>",
                args.credential
            )),
        })?;
    // A missing password (this credential's or another's, still to be encrypted) and this
    // credential's plaintext password are what this command repairs; any other problem in the
    // spec stops it.
    let spec = match regops_spec::load(sources.clone(), &default_name(&args.spec.files)) {
        Ok(l) => l.spec,
        Err(inv) => {
            let within = |d: &Diagnostic| {
                d.primary().is_some_and(|l| {
                    l.file == file && l.start >= cred_node.loc.start && l.end <= cred_node.loc.end
                }) || d
                    .message
                    .contains(&format!("credential `{}`", args.credential))
            };
            let blocking: Vec<Diagnostic> = inv
                .diagnostics
                .iter()
                .filter(|d| d.severity == regops_spec::Severity::Error)
                .filter(|d| {
                    !(d.code == "spec::missing-credential"
                        || (d.code == "spec::plaintext-secret" && within(d)))
                })
                .cloned()
                .collect();
            if !blocking.is_empty() {
                let mut diagnostics = Diagnostics::default();
                blocking.into_iter().for_each(|d| diagnostics.push(d));
                return Err(Failure::Spec {
                    sources: inv.sources,
                    diagnostics,
                });
            }
            inv.partial
        }
    };
    let recipients =
        crypto::parse_recipients(&spec.recipients).map_err(|diagnostics| Failure::Spec {
            sources: sources.clone(),
            diagnostics,
        })?;
    if recipients.is_empty() {
        return Err(Failure::Message {
            message: "the spec lists no `recipients` to encrypt to".into(),
            help: Some(
                "add your public key (`regops keygen --public KEYFILE`) under `recipients:`".into(),
            ),
        });
    }
    let secret = read_new_secret(&args.credential)?;
    let armor = crypto::encrypt(&secret, &recipients).map_err(|e| Failure::msg(e.to_string()))?;
    drop(secret);
    let spec_path = sources
        .get(file)
        .map(|f| f.path.clone())
        .unwrap_or_default();
    let age_file = args
        .age_file
        .as_ref()
        .map(|p| p.to_string_lossy().to_string());
    let age_path = age_file
        .as_ref()
        .map(|p| credentials::resolve_path(&sources, cred_node.loc, Path::new(p)));
    let new = match (&age_file, &age_path) {
        (Some(p), Some(full)) => {
            edit::write_atomic(full, &armor).map_err(|e| Failure::msg(e.to_string()))?;
            NewPassword::AgeFile(p)
        }
        _ => NewPassword::Armored(&armor),
    };
    let e = edit::set_password(&sources, &args.credential, &new)
        .map_err(|e| Failure::msg(e.to_string()))?;
    let format = sources
        .get(file)
        .map(|f| f.format)
        .unwrap_or(regops_spec::Format::Yaml);
    for (_, text) in edit::apply(&sources, vec![e]) {
        edit::verify(format, &text, &args.credential, &new)
            .map_err(|e| Failure::msg(e.to_string()))?;
        edit::write_atomic(&spec_path, &text).map_err(|e| Failure::msg(e.to_string()))?;
    }
    term.note(&format!(
        "encrypted credential `{}` to {} recipient{}; wrote {}",
        args.credential,
        recipients.len(),
        if recipients.len() == 1 { "" } else { "s" },
        age_path.map_or_else(
            || spec_path.display().to_string(),
            |p| format!("{} and {}", p.display(), spec_path.display())
        )
    ));
    Ok(ExitStatus::Success)
}

fn rekey(args: RekeyArgs, term: &Term) -> Outcome {
    let loaded = load(&args.spec.files, term)?;
    let recipients =
        crypto::parse_recipients(&loaded.spec.recipients).map_err(|diagnostics| Failure::Spec {
            sources: loaded.sources.clone(),
            diagnostics,
        })?;
    if recipients.is_empty() {
        return Err(Failure::msg(
            "the spec lists no `recipients`; rekeying would lock everyone out",
        ));
    }
    let encrypted: Vec<&str> = loaded
        .spec
        .credentials
        .values()
        .filter(|c| {
            matches!(
                c.password,
                SecretSource::Age(_) | SecretSource::AgeFile { .. }
            )
        })
        .map(|c| c.name.as_str())
        .collect();
    if encrypted.is_empty() {
        term.note("no encrypted credentials to rekey");
        return Ok(ExitStatus::Success);
    }
    // Decrypt everything first: either all credentials are rekeyed or none.
    let logins = resolve_logins(&loaded, &args.identity.identity, Some(&encrypted))?;
    let mut armors: BTreeMap<&str, String> = BTreeMap::new();
    for name in &encrypted {
        let login = logins
            .get(*name)
            .ok_or_else(|| Failure::msg(format!("credential `{name}` was not decrypted")))?;
        armors.insert(
            name,
            crypto::encrypt(&login.password, &recipients)
                .map_err(|e| Failure::msg(e.to_string()))?,
        );
    }
    let mut edits = Vec::new();
    let mut checks = Vec::new();
    for name in &encrypted {
        let cred = &loaded.spec.credentials[*name];
        let armor = &armors[name];
        match &cred.password {
            SecretSource::AgeFile { age_file } => {
                let full = credentials::resolve_path(&loaded.sources, age_file.loc, age_file);
                edit::write_atomic(&full, armor).map_err(|e| Failure::msg(e.to_string()))?;
            }
            _ => {
                let new = NewPassword::Armored(armor);
                edits.push(
                    edit::set_password(&loaded.sources, name, &new)
                        .map_err(|e| Failure::msg(e.to_string()))?,
                );
                checks.push((cred.name.loc.file, *name));
            }
        }
    }
    for (file, text) in edit::apply(&loaded.sources, edits) {
        let Some(src) = loaded.sources.get(file) else {
            continue;
        };
        for (_, name) in checks.iter().filter(|(f, _)| *f == file) {
            edit::verify(
                src.format,
                &text,
                name,
                &NewPassword::Armored(&armors[name]),
            )
            .map_err(|e| Failure::msg(e.to_string()))?;
        }
        edit::write_atomic(&src.path, &text).map_err(|e| Failure::msg(e.to_string()))?;
    }
    term.note(&format!(
        "re-encrypted {} credential{} to {} recipient{}",
        encrypted.len(),
        if encrypted.len() == 1 { "" } else { "s" },
        recipients.len(),
        if recipients.len() == 1 { "" } else { "s" }
    ));
    Ok(ExitStatus::Success)
}

/// A runtime for the commands that talk to a cluster.
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::msg(format!("cannot start the async runtime: {e}")))
}

impl From<crate::cluster::ClusterError> for Failure {
    fn from(e: crate::cluster::ClusterError) -> Self {
        Failure::Message {
            help: e.help(),
            message: e.to_string(),
        }
    }
}

fn cluster_info(args: ClusterArgs, term: &Term) -> Outcome {
    crate::retry::set_request_timeout(args.request_timeout);
    let info = runtime()?.block_on(crate::cluster::info(
        args.kubeconfig.as_deref(),
        args.context.as_deref(),
    ))?;
    term.stdout(&format!(
        "server:     {}\ncontext:    {}\nversion:    {}\nnamespaces: {}\n",
        info.target.server,
        info.target.context.as_deref().unwrap_or("(in-cluster)"),
        info.version,
        info.namespaces
    ));
    Ok(ExitStatus::Success)
}

/// What plan and apply start from: the validated spec, the namespace filter, the logins the
/// pull secrets need, and the spec's provenance.
struct Prepared {
    loaded: Loaded,
    only: Option<std::collections::BTreeSet<String>>,
    logins: BTreeMap<String, Login>,
    source: regops_core::plan::Source,
}

fn prepare(run: &crate::cli::RunArgs, term: &Term) -> Result<Prepared, Failure> {
    let (spec, identity, namespaces) = (&run.spec, &run.identity, &run.namespaces);
    let loaded = load(&spec.files, term)?;
    for ns in namespaces {
        regops_spec::rules::dns1123_label(ns)
            .map_err(|why| Failure::msg(format!("-n: `{ns}` is not a namespace name: it {why}")))?;
    }
    let only = (!namespaces.is_empty()).then(|| namespaces.iter().cloned().collect());
    let logins = resolve_logins(
        &loaded,
        &identity.identity,
        Some(&used_credentials(&loaded.spec)),
    )?;
    let files: Vec<&Path> = loaded
        .sources
        .files()
        .iter()
        .map(|f| f.path.as_path())
        .collect();
    let source = crate::provenance::source(&files);
    Ok(Prepared {
        loaded,
        only,
        logins,
        source,
    })
}

/// Connects as `run` says and reads what the plan needs; the target, for messages.
fn read_cluster(
    run: &crate::cli::RunArgs,
    loaded: &Loaded,
) -> Result<(regops_core::observed::Observed, String), Failure> {
    crate::retry::set_request_timeout(run.cluster.request_timeout);
    let read = async {
        let (client, target) = crate::cluster::connect(
            run.cluster.kubeconfig.as_deref(),
            run.cluster.context.as_deref(),
        )
        .await?;
        let observed =
            crate::observe::from_cluster(&client, &target, &loaded.spec, &loaded.name).await?;
        Ok::<_, crate::cluster::ClusterError>((observed, target.to_string()))
    };
    Ok(runtime()?.block_on(read)?)
}

/// The credentials the pull secrets use.
fn used_credentials(spec: &regops_spec::Spec) -> Vec<&str> {
    let mut used: Vec<&str> = spec
        .pull_secrets
        .values()
        .flat_map(|p| p.registries.iter())
        .filter_map(|r| spec.registries.get(r.as_str()))
        .map(|r| r.credential.as_str())
        .collect();
    used.sort();
    used.dedup();
    used
}

fn plan(args: PlanArgs, term: &Term) -> Outcome {
    let Prepared {
        loaded,
        only,
        logins,
        source,
    } = prepare(&args.run, term)?;
    let mut extra_warnings = Vec::new();
    let (observed, target) = match &args.live_state {
        Some(path) => {
            let (observed, skipped) =
                crate::observe::from_file(path).map_err(|e| Failure::msg(e.to_string()))?;
            for s in skipped {
                extra_warnings.push(format!(
                    "{}: object {} skipped: {}",
                    path.display(),
                    s.index + 1,
                    s.reason
                ));
            }
            (observed, format!("state file {}", path.display()))
        }
        None => read_cluster(&args.run, &loaded)?,
    };
    let desired = regops_core::desired::compute(&loaded.spec, &logins, &observed, only.as_ref());
    let mut plan = regops_core::plan::compute(
        &loaded.name,
        &target,
        source,
        &desired,
        &observed,
        only.as_ref(),
    );
    plan.warnings.extend(extra_warnings);
    // The cluster as read and the desired state are not needed to show the plan: free them
    // before the view is built, so the two never add up.
    drop((desired, observed));
    let rendered = match args.output {
        OutputFormat::Text => regops_core::view::text(&plan, term.color_stdout()),
        OutputFormat::Json => regops_core::view::json(&plan),
        OutputFormat::Markdown => regops_core::view::markdown(&plan),
    };
    term.stdout(&rendered);
    Ok(if !plan.conflicts.is_empty() {
        ExitStatus::Failure
    } else if plan.has_changes() {
        ExitStatus::Changes
    } else {
        ExitStatus::Success
    })
}

fn holder_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "regops".into());
    format!("{host}/{}", std::process::id())
}

fn confirm(term: &Term) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Message {
            message: "not applying without confirmation: standard input is not a terminal".into(),
            help: Some("pass --yes to apply unattended".into()),
        });
    }
    term.prompt("Apply these changes? Only 'yes' is accepted: ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Failure::msg(format!("cannot read the answer: {e}")))?;
    Ok(answer.trim() == "yes")
}

fn apply(args: ApplyArgs, term: &Term) -> Outcome {
    let Prepared {
        loaded,
        only,
        logins,
        source,
    } = prepare(&args.run, term)?;
    let dry_run = args.dry_run.is_some();
    let opts = crate::apply::Options {
        spec: loaded.name.clone(),
        commit: source.commit.clone(),
        prune: args.prune,
        dry_run,
        force_conflicts: args.force_conflicts,
        concurrency: usize::from(args.concurrency),
    };
    let rt = runtime()?;
    crate::retry::set_request_timeout(args.run.cluster.request_timeout);
    let (client, target) = rt.block_on(crate::cluster::connect(
        args.run.cluster.kubeconfig.as_deref(),
        args.run.cluster.context.as_deref(),
    ))?;
    // The lock is taken before reading, so the plan is made from a cluster no other apply of
    // this spec is writing to.
    let lock = if dry_run {
        None
    } else {
        let name = args
            .lock_name
            .clone()
            .unwrap_or_else(|| format!("regops-{}", loaded.name));
        let warn = |m: &str| term.note(&format!("warning: {m}"));
        Some(
            rt.block_on(crate::lock::acquire(
                &client,
                &args.lock_namespace,
                &name,
                &holder_identity(),
                i32::from(args.lock_duration),
                std::time::Duration::from_secs(args.lock_wait),
                &warn,
                {
                    let kubeconfig = args.run.cluster.kubeconfig.clone();
                    let context = args.run.cluster.context.clone();
                    Box::new(move || {
                        Box::pin(async move {
                            crate::cluster::connect(kubeconfig.as_deref(), context.as_deref())
                                .await
                                .ok()
                                .map(|(client, _)| client)
                        })
                    })
                },
            ))
            .map_err(|e| Failure::Message {
                help: e.help(),
                message: e.to_string(),
            })?,
        )
    };
    let result = (|| -> Outcome {
        let observed = rt.block_on(crate::observe::from_cluster(
            &client,
            &target,
            &loaded.spec,
            &loaded.name,
        ))?;
        let desired =
            regops_core::desired::compute(&loaded.spec, &logins, &observed, only.as_ref());
        let plan = regops_core::plan::compute(
            &loaded.name,
            &target.to_string(),
            source.clone(),
            &desired,
            &observed,
            only.as_ref(),
        );
        {
            // Coloured by the stream it goes to: stdout's setting for the text report, stderr's
            // when the report on stdout is JSON (`regops apply | tee log` gets no escapes).
            if args.output == ReportFormat::Text {
                term.stdout(&regops_core::view::text(&plan, term.color_stdout()));
            } else {
                term.note(regops_core::view::text(&plan, term.color).trim_end());
            }
        }
        if !plan.has_changes() {
            if args.output == ReportFormat::Json {
                term.stdout(&report_json(
                    &plan,
                    &crate::apply::Report::default(),
                    dry_run,
                ));
            }
            return Ok(if plan.conflicts.is_empty() {
                ExitStatus::Success
            } else {
                ExitStatus::Failure
            });
        }
        if !args.yes && !dry_run && !confirm(term)? {
            term.note("Apply cancelled; nothing was written.");
            return Ok(ExitStatus::Failure);
        }
        let total = plan
            .changes
            .iter()
            .filter(|c| c.action != regops_core::plan::Action::Noop)
            .count();
        let progress = crate::output::Progress::new(term, total, args.output == ReportFormat::Text);
        let report = rt.block_on(crate::apply::run(
            &client,
            &plan,
            &desired,
            &observed,
            &opts,
            &|item| progress.item(item),
            &|| lock.as_ref().is_some_and(crate::lock::Lock::lost),
        ));
        progress.finish();
        match args.output {
            ReportFormat::Text => term.stdout(&report_text(&report, dry_run, plan.conflicts.len())),
            ReportFormat::Json => term.stdout(&report_json(&plan, &report, dry_run)),
        }
        let lost = lock.as_ref().is_some_and(crate::lock::Lock::lost);
        if lost {
            term.note(
                "error: the lock was lost during the apply (another apply took it over, or it could not be renewed); writes not yet started were not made. Run apply again.",
            );
        }
        Ok(
            if report.failed() > 0 || !plan.conflicts.is_empty() || lost {
                ExitStatus::Failure
            } else {
                ExitStatus::Success
            },
        )
    })();
    if let Some(lock) = lock {
        rt.block_on(lock.release());
    }
    result
}

fn report_text(report: &crate::apply::Report, dry_run: bool, conflicts: usize) -> String {
    use crate::apply::Outcome as O;
    let mut out = String::new();
    let failed = report.failed();
    let skipped = report.count(O::Skipped);
    // One section per outcome worth a line of its own: its title, the mark before each object
    // and whether the action is named, and which results it lists.
    type Pick = fn(&crate::apply::ItemResult) -> bool;
    let sections: [(&str, &str, bool, Pick); 3] = [
        ("Not applied (failed)", "✗", true, |r| {
            r.outcome == O::Failed
        }),
        ("Applied, with notes", "✓", false, |r| {
            matches!(r.outcome, O::Applied | O::DryRun) && r.message.is_some()
        }),
        ("Skipped", "-", false, |r| r.outcome == O::Skipped),
    ];
    for (title, mark, with_verb, pick) in sections {
        let items: Vec<_> = report.results.iter().filter(|r| pick(r)).collect();
        if items.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{title}:\n"));
        for r in items {
            let verb = if with_verb {
                format!("{} ", format!("{:?}", r.action).to_lowercase())
            } else {
                String::new()
            };
            out.push_str(&format!(
                "  {mark} {verb}{} {}/{}: {}\n",
                r.kind,
                r.namespace,
                r.name,
                r.message.as_deref().unwrap_or("")
            ));
        }
    }
    let done = if dry_run {
        report.count(O::DryRun)
    } else {
        report.count(O::Applied)
    };
    out.push_str(&format!(
        "\n{}: {done} applied{}, {} failed, {} skipped{}.\n",
        if dry_run {
            "Dry run (server-side, nothing stored)"
        } else {
            "Apply complete"
        },
        if dry_run { " as a dry run" } else { "" },
        failed,
        skipped,
        if conflicts > 0 {
            format!(", {conflicts} in conflict")
        } else {
            String::new()
        }
    ));
    if failed > 0 {
        out.push_str("Everything else was applied; run apply again to converge.\n");
    }
    out
}

fn report_json(
    plan: &regops_core::plan::Plan,
    report: &crate::apply::Report,
    dry_run: bool,
) -> String {
    let v = serde_json::json!({
        "formatVersion": "1",
        "spec": plan.spec,
        "target": plan.target,
        "dryRun": dry_run,
        "results": report.results,
        "conflicts": plan.conflicts,
        "summary": {
            "applied": report.count(crate::apply::Outcome::Applied),
            "dryRun": report.count(crate::apply::Outcome::DryRun),
            "failed": report.failed(),
            "skipped": report.count(crate::apply::Outcome::Skipped),
            "conflicts": plan.conflicts.len(),
        },
    });
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

fn drift(args: crate::cli::DriftArgs, term: &Term) -> Outcome {
    // The spec's name for the metrics, even when the run failed after reading it.
    let spec_name = || {
        let fallback = default_name(&args.run.spec.files);
        regops_spec::source::read_paths(&args.run.spec.files)
            .ok()
            .and_then(|sources| regops_spec::load(sources, &fallback).ok())
            .map_or(fallback.clone(), |l| l.name)
    };
    let result = drift_inner(&args, term);
    if let Some(path) = &args.metrics_file {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (name, drifted, ok) = match &result {
            Ok((name, n, _)) => (name.clone(), Some(*n), true),
            Err(_) => (spec_name(), None, false),
        };
        crate::edit::write_atomic(path, &regops_core::drift::metrics(&name, drifted, ok, now))
            .map_err(|e| Failure::msg(e.to_string()))?;
    }
    result.map(|(_, _, status)| status)
}

fn drift_inner(
    args: &crate::cli::DriftArgs,
    term: &Term,
) -> Result<(String, usize, ExitStatus), Failure> {
    let Prepared {
        loaded,
        only,
        logins,
        source,
    } = prepare(&args.run, term)?;
    let (observed, target) = read_cluster(&args.run, &loaded)?;
    let desired = regops_core::desired::compute(&loaded.spec, &logins, &observed, only.as_ref());
    let plan = regops_core::plan::compute(
        &loaded.name,
        &target,
        source,
        &desired,
        &observed,
        only.as_ref(),
    );
    let drift = regops_core::drift::drift(&plan, &observed);
    drop((desired, observed));
    let objects: std::collections::BTreeSet<(&str, &str, &str)> = drift
        .iter()
        .map(|d| (d.kind.as_str(), d.namespace.as_str(), d.name.as_str()))
        .collect();
    match args.output {
        ReportFormat::Json => {
            let v = serde_json::json!({
                "formatVersion": "1",
                "spec": plan.spec,
                "target": plan.target,
                "inSync": drift.is_empty(),
                "driftedObjects": objects.len(),
                "checked": plan.changes.len(),
                "drift": drift,
                "warnings": plan.warnings,
            });
            let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
            s.push('\n');
            term.stdout(&s);
        }
        ReportFormat::Text => {
            let mut out = format!(
                "regops drift: spec `{}` against {}\n",
                plan.spec, plan.target
            );
            if drift.is_empty() {
                out.push_str(&format!(
                    "In sync: {} object{} checked.\n",
                    plan.changes.len(),
                    if plan.changes.len() == 1 { "" } else { "s" }
                ));
            } else {
                for d in &drift {
                    let how = serde_json::to_value(d.how)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    out.push_str(&format!(
                        "  {how:<17} {} {}/{}: {}\n",
                        d.kind, d.namespace, d.name, d.detail
                    ));
                }
                let n = objects.len();
                out.push_str(&format!(
                    "Drift: {n} object{} from the spec; `regops apply` converges.\n",
                    if n == 1 { " differs" } else { "s differ" }
                ));
            }
            term.stdout(&out);
        }
    }
    let status = if drift.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Changes
    };
    Ok((loaded.name.clone(), objects.len(), status))
}

fn validate(args: crate::cli::ValidateArgs, term: &Term) -> Outcome {
    let loaded = load(&args.spec.files, term)?;
    let spec = &loaded.spec;
    for name in &args.registry {
        if !spec.registries.contains_key(name) {
            let hint = regops_spec::diagnostic::did_you_mean(
                name,
                spec.registries.keys().map(String::as_str),
            );
            return Err(Failure::Message {
                message: format!("no registry `{name}` in the spec"),
                help: hint.map(|h| format!("did you mean `{h}`?")),
            });
        }
    }
    let chosen: Vec<&regops_spec::Registry> = spec
        .registries
        .values()
        .filter(|r| args.registry.is_empty() || args.registry.contains(&r.name.value))
        .collect();
    let wanted: Vec<&str> = chosen.iter().map(|r| r.credential.as_str()).collect();
    let logins = resolve_logins(&loaded, &args.identity.identity, Some(&wanted))?;
    let image_ref = args
        .image
        .as_deref()
        .map(regops_core::image::ImageRef::parse);
    let rt = runtime()?;
    let mut rows = Vec::new();
    for reg in chosen {
        let Some(login) = logins.get(reg.credential.as_str()) else {
            continue;
        };
        // With --image, check it only where it is served from.
        let image = args.image.as_deref().filter(|_| {
            image_ref
                .as_ref()
                .is_some_and(|r| r.pulls_from(&reg.server))
        });
        let ca = reg
            .ca_file
            .as_ref()
            .map(|c| crate::credentials::resolve_path(&loaded.sources, c.loc, c));
        let verdict = rt.block_on(crate::registry::check(
            &reg.server,
            reg.insecure,
            ca.as_deref(),
            login,
            image,
        ));
        rows.push((reg.name.value.clone(), reg.server.value.clone(), verdict));
    }
    let ok = rows.iter().all(|(_, _, v)| v.is_ok());
    match args.output {
        ReportFormat::Json => {
            let v: Vec<serde_json::Value> = rows.iter().map(|(n, s, v)| serde_json::json!({"registry": n, "server": s, "result": v.label(), "detail": v.detail()})).collect();
            let mut out = serde_json::to_string_pretty(
                &serde_json::json!({"formatVersion": "1", "ok": ok, "registries": v}),
            )
            .unwrap_or_default();
            out.push('\n');
            term.stdout(&out);
        }
        ReportFormat::Text => {
            let w1 = rows.iter().map(|r| r.0.len()).max().unwrap_or(8).max(8);
            let w2 = rows.iter().map(|r| r.1.len()).max().unwrap_or(6).max(6);
            let mut out = format!(
                "{:<w1$}  {:<w2$}  {:<15}  DETAIL\n",
                "REGISTRY", "SERVER", "RESULT"
            );
            for (n, s, v) in &rows {
                out.push_str(&format!(
                    "{n:<w1$}  {s:<w2$}  {:<15}  {}\n",
                    v.label(),
                    v.detail()
                ));
            }
            term.stdout(&out);
        }
    }
    Ok(if ok {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
