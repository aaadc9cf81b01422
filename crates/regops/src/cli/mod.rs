//! The command line: every flag is defined and documented here, and nothing else in regops
//! knows about argv. [`commands`] holds one module per subcommand: its flags turned into the
//! option structs of [`crate::ops::options`], its prompts and what it prints.

pub mod commands;

use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use regops_core::format::{Format, View};

const EXAMPLES: &str = "\
Examples:
  regops keygen --out ~/.config/regops/key.txt        # one identity per person or CI job
  regops encrypt -f regops.yaml --credential harbor-robot
  regops check -f regops.yaml                      # the spec is valid and decrypts
  regops render -f regops.yaml -n web,api
  regops rekey -f regops.yaml                      # after editing `recipients`

Exit status, for every command (docs/using.md#exit-codes):
  0  success, nothing pending; --help and --version
  1  an error, with a diagnostic: a usage error, a spec error, a cluster that cannot be reached;
     also `plan` with conflicts and `apply` that left something undone (a failed write, a
     conflict)
  2  changes pending (`plan`) or drift found (`drift`, conflicts included), and only that";

pub use crate::VERSION;

/// Keeps Kubernetes image-pull credentials in git, encrypted with age, and in step with the
/// clusters.
#[derive(Debug, Parser)]
#[command(name = "regops", version = VERSION, after_help = EXAMPLES, max_term_width = 100)]
pub struct Cli {
    /// When to use colour: `auto` uses it on a terminal unless NO_COLOR is set.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Log each API request on stderr (verb, path, status, duration), as `kubectl -v=6` does;
    /// `-vv` also logs retries. Never a header, a body or a credential. `RUST_LOG=debug` (or
    /// `regops=debug`) is `-v`, `RUST_LOG=trace` is `-vv`.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Colour on or off whatever the terminal says (`None`: as the terminal and NO_COLOR say).
    pub fn forced(self) -> Option<bool> {
        match self {
            ColorChoice::Auto => None,
            ColorChoice::Always => Some(true),
            ColorChoice::Never => Some(false),
        }
    }
}

/// The status of a command line clap handled itself: `--help`, `--version` and `regops help`
/// are success; a usage error is a failure, as is a bare `regops` (clap shows the help, on
/// stderr, and nothing was done). Never 2, clap's own code for usage errors, which would read
/// as "changes pending".
pub fn usage_status(e: &clap::Error) -> crate::ExitStatus {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => crate::ExitStatus::Success,
        _ => crate::ExitStatus::Failure,
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a spec and decrypt its credentials, without touching a cluster.
    #[command(
        after_help = "Examples:\n  regops check -f regops.yaml\n  regops check -f specs/ --no-decrypt   # in CI without the age key"
    )]
    Check(CheckArgs),

    /// Print the Secrets regops would own, as YAML manifests (no cluster needed).
    #[command(after_help = "\
Examples:
  regops render -f regops.yaml                           # the namespaces the scopes name
  regops render -f regops.yaml -n web,api      # these namespaces
  regops render -f regops.yaml --show-secrets | kubectl apply -f -
  regops render -f regops.yaml --node-config containerd                  # node trust, as YAML
  regops render -f regops.yaml --node-config containerd --output-dir certs.d

Scopes that select namespaces by label, Rancher project or KubeSphere workspace need a cluster to
resolve; without -n, render shows only the namespaces they name.")]
    Render(RenderArgs),

    /// Generate an age identity (private key) and print its public key.
    #[command(after_help = "\
Examples:
  regops keygen --out ~/.config/regops/key.txt     # file mode 0600; the public key goes to stderr
  regops keygen --public ~/.config/regops/key.txt")]
    Keygen(KeygenArgs),

    /// Encrypt a credential's password to every recipient and write it into the spec.
    #[command(after_help = "\
The password is read from the terminal without echo, or from standard input when it is not a
terminal (one trailing newline is dropped). It is never taken from the command line.

Examples:
  regops encrypt -f regops.yaml --credential harbor-robot
  printf '%s' \"$TOKEN\" | regops encrypt -f regops.yaml --credential dockerhub-ci
  regops encrypt -f regops.yaml --credential quay --age-file secrets/quay.age")]
    Encrypt(EncryptArgs),

    /// Write a spec from the pull secrets a cluster already has (read only; nothing is written
    /// to the cluster).
    #[command(after_help = "\
Reads every kubernetes.io/dockerconfigjson Secret (a legacy dockercfg one is left out, with a
note), the namespaces, the ServiceAccounts and the workloads, and writes a spec whose pull
secrets carry `adopt: true`:
`regops plan` with it shows only adoption (regops' label and annotations on each Secret), and
nothing after one apply. Passwords are written only as age ciphertext to the recipients given;
the file is created with mode 0600, atomically, and an existing one is kept unless --force.

Examples:
  regops import --out regops.yaml --recipient age1...            # the current kubeconfig context
  regops import --context prod -n web,api --out web.yaml --recipients-file team.txt
  regops import --selector team=web --dry-run --recipient age1...   # print it, passwords redacted")]
    Import(ImportArgs),

    /// Re-encrypt every credential to the current `recipients` (after someone joins or leaves).
    #[command(after_help = "Examples:\n  regops rekey -f regops.yaml -i ~/.config/regops/key.txt")]
    Rekey(RekeyArgs),

    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  regops completions bash > /etc/bash_completion.d/regops\n  regops completions zsh > \"${fpath[1]}/_regops\"\n  regops completions fish > ~/.config/fish/completions/regops.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Exit 0 if the controller whose --progress-file is FILE made progress within --stall, else
    /// 1: the install's exec liveness probe.
    #[command(
        after_help = "Example (deploy/controller's livenessProbe):\n  regops alive /run/regops/progress --stall 5m"
    )]
    Alive(AliveArgs),
    /// Print the man page (roff).
    #[command(after_help = "Examples:\n  regops man > /usr/local/share/man/man1/regops.1")]
    Man,

    /// Print a JSON Schema: of the spec (default), or of `plan --output json`.
    Schema {
        #[arg(value_enum, default_value_t = SchemaKind::Spec)]
        which: SchemaKind,
    },

    /// Show what apply would change: read the cluster (or a state file), compare with the spec.
    #[command(after_help = "\
Exit codes: 0 no changes, 2 changes pending, 1 error or conflicts (like terraform plan
-detailed-exitcode; a usage error is 1 too).

Examples:
  regops plan -f regops.yaml                              # the current kubeconfig context
  regops plan -f regops.yaml --context prod -n web,api
  regops plan -f regops.yaml --output markdown > plan.md  # for a pull-request comment
  regops plan -f regops.yaml --live-state cluster.yaml    # no cluster: kubectl get ... -o yaml
  regops plan -f fleet.yaml --cluster prod-eu --cluster prod-us   # some of the spec's clusters

With `clusters` in the spec, every cluster listed is planned at once (--cluster-concurrency),
and the report is grouped by cluster with a fleet total; exit 1 if any cluster failed, else
2 if any has changes, else 0.")]
    Plan(PlanArgs),

    /// Prove the registries accept the credentials: log in as `docker login` does.
    #[command(after_help = "\
Exit codes: 0 every registry accepted its credential, 1 otherwise.

Examples:
  regops validate -f regops.yaml
  regops validate -f regops.yaml --registry harbor --image harbor.example.com/web/app:1.4")]
    Validate(ValidateArgs),

    /// Check, read-only, whether the cluster still matches the spec (for cron and CronJobs).
    #[command(after_help = "\
Exit codes: 0 in sync, 2 drift (conflicts included), 1 error.

Examples:
  regops drift -f regops.yaml
  regops drift -f regops.yaml --output json
  regops drift -f regops.yaml --metrics-file /var/lib/node_exporter/textfile/regops.prom
  regops drift -f fleet.yaml --cluster prod-eu        # one of the spec's clusters")]
    Drift(DriftArgs),

    /// Make the cluster match the spec: show the plan, then carry it out (idempotently).
    #[command(after_help = "\
Order: Secrets first, then the ServiceAccounts and workloads that reference them, deletions
(with --prune) last. A second apply of the same spec writes nothing.

Exit codes: 0 converged, 1 error or conflicts (the report says what was and was not applied;
run again to converge). apply never exits 2.

Examples:
  regops apply -f regops.yaml                         # asks before writing, on a terminal
  regops apply -f regops.yaml --yes --prune           # in CI on merge
  regops apply -f regops.yaml --dry-run=server        # the API server validates every write
  regops apply -f regops.yaml --yes --output json     # a machine-readable report
  regops apply -f regops.yaml --watch --listen 0.0.0.0:8080 --prune
                                                      # a controller: see --watch
  regops apply -f fleet.yaml --yes                    # every cluster in the spec's `clusters`

With `clusters` in the spec, every cluster (or each --cluster) is planned at once, under its
own Lease; one confirmation covers the fleet; an unreachable or refusing cluster is reported
and the others are still applied (exit code 1).

With --watch, regops runs until SIGTERM: one full apply, then a namespace that is created or
relabelled into a scope (or a ServiceAccount or workload that appears or loses its entry) is
planned and applied on its own within a second. The spec file is read again when it changes
(a ConfigMap mount) and on SIGHUP; an invalid new spec is reported and the last good one stays
in force. Replicas share the Lease: one writes, the others wait and take over within the
Lease's duration when it dies. On SIGTERM, writes in flight finish and the Lease is released.

With a saved plan (`regops plan --out FILE`), apply carries out exactly that plan, or nothing:
it refuses, naming what moved, when the spec's files or ciphertext differ from those planned,
when the cluster is another, or when an object read then has changed, appeared or gone since.
-f may be left out: the plan names the spec's files.
  regops plan -f regops.yaml --out plan.json          # on the pull request
  regops apply plan.json --yes                        # after merge, from the same checkout")]
    #[command(mut_arg("files", |a| a.required(false)))]
    Apply(Box<ApplyArgs>),

    /// Show a saved plan (`plan --out`): its changes, and what it was made from.
    #[command(after_help = "\
Exit codes: 0 shown (whatever changes or conflicts the plan holds), 1 error.

Examples:
  regops show plan.json                              # as `regops plan` shows it
  regops show plan.json --output markdown > plan.md  # for the pull request
  regops show plan.json --output json                # the plan model (schemas/plan.schema.json)")]
    Show(ShowArgs),

    /// Keep containerd's node trust on this node: write the `certs.d` host directories of
    /// the hosts the operator allows, from what `render --node-config containerd` printed.
    #[command(
        name = "node-sync",
        after_help = "\
Only hosts given with --allow-host are written; the others are refused (exit 1, after the
allowed ones are written). A host directory node-sync makes holds a .regops-node-trust file;
directories without it are never written nor removed, and nothing is written through a
symbolic link. Directories of its own whose host left the stream or the allowlist are removed.
With --containerd-config, containerd's config.toml is read (only) to report whether its CRI
registry config_path points at the directory node-sync writes.

Examples:
  regops render -f regops.yaml --node-config containerd > node-trust.yaml
  regops node-sync --from node-trust.yaml --root /etc/containerd/certs.d --allow-host harbor.example.com:8443
  regops node-sync --from /etc/regops/containerd.yaml --root /host/etc/containerd/certs.d --allow-host 192.168.0.99 --containerd-config /host/etc/containerd/config.toml --interval 1m"
    )]
    NodeSync(NodeSyncArgs),

    /// Connect to the cluster and report what regops sees (server, version, namespaces).
    #[command(
        name = "cluster-info",
        after_help = "Examples:\n  regops cluster-info\n  regops cluster-info --kubeconfig ~/.kube/staging --context admin@staging"
    )]
    ClusterInfo(ClusterArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// The spec (schemas/regops.schema.json).
    Spec,
    /// The JSON plan (schemas/plan.schema.json).
    Plan,
    /// The JSON plan of a spec with `clusters` (schemas/fleet-plan.schema.json).
    FleetPlan,
}

/// How much of a large plan the text view lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DetailLevel {
    /// Changes alike across namespaces as one line per group; warnings counted by kind.
    Summary,
    /// Every change and every warning, one by one.
    Full,
}

impl DetailLevel {
    pub fn view(self) -> regops_core::view::Detail {
        match self {
            DetailLevel::Summary => regops_core::view::Detail::Summary,
            DetailLevel::Full => regops_core::view::Detail::Full,
        }
    }
}

/// `--output`'s values: exactly the formats of the command's view
/// ([`regops_core::format::View::FORMATS`]), each with what it gives there.
fn formats<V: View>() -> impl clap::builder::TypedValueParser<Value = Format> {
    clap::builder::PossibleValuesParser::new(
        V::FORMATS
            .iter()
            .map(|(f, help)| clap::builder::PossibleValue::new(f.name()).help(*help)),
    )
    .try_map(|name| Format::parse(&name).ok_or("not a format"))
}

/// What plan and apply share: which spec, which keys, which cluster, which namespaces.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Only these namespaces (comma-separated or repeated). Up to eight are read on their own
    /// (a few LISTs in each), so a run for one namespace costs what it holds, not what the
    /// cluster does.
    #[arg(
        short = 'n',
        long = "namespace",
        value_name = "NS",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// How many of the spec's clusters are worked on at once: a run over N clusters takes
    /// about as long as the slowest, up to this many.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub cluster_concurrency: u16,
}

impl RunArgs {
    /// What the flags ask of the loading, cluster and fleet layers.
    pub fn options(&self) -> crate::ops::options::RunOptions {
        crate::ops::options::RunOptions {
            spec: self.spec.options(),
            identities: self.identity.identity.clone(),
            cluster: self.cluster.options(),
            namespaces: self.namespaces.clone(),
            clusters: self.fleet.clusters.clone(),
            cluster_concurrency: self.cluster_concurrency,
            mint: true,
        }
    }
}

/// Which of the spec's `clusters` a run works on.
#[derive(Clone, Debug, Default, Args)]
pub struct FleetArgs {
    /// Only this cluster of the spec's `clusters` (repeat for several); every cluster when
    /// omitted. Needs a spec with `clusters`.
    #[arg(long = "cluster", value_name = "NAME")]
    pub clusters: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Output format.
    #[arg(short = 'o', long, default_value = "text", value_parser = formats::<regops_core::view::PlanView>())]
    pub output: Format,
    /// Plan against a file of Kubernetes objects (a `kubectl get ... -o yaml` List, or
    /// multi-document YAML) instead of a cluster.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["kubeconfig", "context"])]
    pub live_state: Option<PathBuf>,
    /// How much the text view lists: `summary` shows changes alike across three or more
    /// namespaces as one line per group and counts warnings by kind; `full` lists each.
    #[arg(long, value_enum, default_value_t = DetailLevel::Summary)]
    pub detail: DetailLevel,
    /// The Markdown view's size budget in bytes (a GitHub comment holds 65,536 characters).
    /// Past it the least important detail is cut, with a "… N more" line and a pointer to the
    /// JSON plan; the summary, every conflict and every deletion always stay.
    #[arg(long, value_name = "BYTES", default_value_t = regops_core::view::MARKDOWN_BUDGET)]
    pub max_bytes: usize,
    /// Also save the plan to FILE, for `regops apply FILE` to carry out exactly this plan: the
    /// changes, the spec's digest and commit, the cluster's identity and the version of each
    /// object read; never a credential. Written atomically, mode 0600. Not with --live-state
    /// (a state file is not a cluster that can be checked again) nor a spec with `clusters`.
    #[arg(long, value_name = "FILE", conflicts_with = "live_state")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The saved plan (`regops plan --out FILE`).
    #[arg(value_name = "PLAN_FILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(short = 'o', long, default_value = "text", value_parser = formats::<regops_core::view::PlanView>())]
    pub output: Format,
    /// How much the text view lists (see `plan --detail`).
    #[arg(long, value_enum, default_value_t = DetailLevel::Summary)]
    pub detail: DetailLevel,
    /// The Markdown view's size budget in bytes (see `plan --max-bytes`).
    #[arg(long, value_name = "BYTES", default_value_t = regops_core::view::MARKDOWN_BUDGET)]
    pub max_bytes: usize,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Only these registries (by their name in the spec; repeatable).
    #[arg(long, value_name = "NAME")]
    pub registry: Vec<String>,
    /// Also check that the credential may pull this image (a `HEAD` of its manifest), on the
    /// registries it is served from.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, default_value = "text", value_parser = formats::<regops_core::report::ValidateView>())]
    pub output: Format,
    /// How long one request to a registry or a token service may take, its answer included:
    /// `30s`, `1m`, `500ms`.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct DriftArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Output format.
    #[arg(short = 'o', long, default_value = "text", value_parser = formats::<regops_core::report::DriftView>())]
    pub output: Format,
    /// Also write a Prometheus textfile (regops_drift_objects, regops_last_run_timestamp_seconds,
    /// regops_run_success) for node-exporter's textfile collector; written atomically, and on
    /// errors too.
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    /// How long until the next drift run (the CronJob's interval): a Secret whose minted token
    /// (ecr, gcp, acr) expires before then is reported `expiring`. Drift never mints.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub next_run: std::time::Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    /// Send every write with `dryRun=All`: the API server validates it and stores nothing.
    Server,
    /// Send nothing: show the plan, as `regops plan` does (and exit as it does).
    Client,
    /// Apply for real (as without the flag).
    None,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A saved plan (`regops plan --out FILE`) to carry out instead of planning anew; the
    /// spec's files are those it names unless -f is given. Refused if anything it was made
    /// from has moved.
    #[arg(value_name = "PLAN_FILE", conflicts_with_all = ["watch", "namespaces", "clusters"])]
    pub plan_file: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Also delete Secrets this spec owns and no longer wants.
    #[arg(long)]
    pub prune: bool,
    /// Validate every write on the server without storing anything (`--dry-run`, or
    /// `=server`); `=client` sends nothing and shows the plan, as `regops plan` does; `=none`
    /// applies, as kubectl's.
    #[arg(long, value_enum, value_name = "server|client|none", num_args = 0..=1, default_missing_value = "server")]
    pub dry_run: Option<DryRun>,
    /// Apply without asking (required when not on a terminal; a saved plan is applied without
    /// asking, as terraform applies one: it was reviewed when it was made).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// How much of the plan shown before applying is listed (see `plan --detail`).
    #[arg(long, value_enum, default_value_t = DetailLevel::Summary)]
    pub detail: DetailLevel,
    /// How many independent writes at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Take ownership of fields another field manager owns (server-side apply `force`).
    #[arg(long)]
    pub force_conflicts: bool,
    /// Report format.
    #[arg(short = 'o', long, default_value = "text", value_parser = formats::<regops_core::report::ApplyView>())]
    pub output: Format,
    /// Namespace of the Lease that keeps two applies of this spec apart.
    #[arg(long, value_name = "NS", default_value = "default")]
    pub lock_namespace: String,
    /// Name of that Lease (default: regops-<spec name>).
    #[arg(long, value_name = "NAME")]
    pub lock_name: Option<String>,
    /// How long to wait for another apply to release the lock (`90s`, `5m`). A holder that
    /// stopped renewing is taken over once its Lease has been seen unchanged for the lease's
    /// duration (--lock-duration), so keep this longer than that.
    #[arg(long, value_name = "DURATION", default_value = "90s", value_parser = parse_wait)]
    pub lock_wait: std::time::Duration,
    /// How long the lock lasts without renewal (client-go's LeaseDuration). With --watch, a
    /// standby replica takes over within this long of the leader's death.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lock_duration: std::time::Duration,
    /// How long the holder goes on writing without a successful renewal (client-go's
    /// RenewDeadline): past it, it stops writing and exits 1. Shorter than --lock-duration,
    /// so it has stopped before a standby may take over.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: std::time::Duration,
    /// How often the holder renews the lock, and a standby looks at it (client-go's
    /// RetryPeriod).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub retry_period: std::time::Duration,
    /// Keep running as a controller: one full apply, then watch the cluster and apply what
    /// each change needs at once (implies --yes; see below).
    #[arg(long, conflicts_with = "dry_run")]
    pub watch: bool,
    /// With --watch: how often the whole cluster is read and applied again, whatever the
    /// watches said (`1h`, `30m`).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub resync: std::time::Duration,
    /// With --watch: serve `/healthz`, `/readyz` and `/metrics` (Prometheus) over HTTP on this
    /// address, such as `0.0.0.0:8080` (default: none).
    #[arg(long, value_name = "ADDR", requires = "watch")]
    pub listen: Option<String>,
    /// With --watch and --listen: `/healthz` fails once the work loop has made no progress
    /// (a turn of its loop, a page read, a write; the Lease's renewals and the watches do not
    /// count) for this long, so that the kubelet restarts a stuck controller (`5m`, `90s`).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration, requires = "listen")]
    pub healthz_stall: std::time::Duration,
    /// With --watch: write the time of the work loop's last progress (Unix seconds) to this
    /// file every 2 seconds, for `regops alive FILE` as the kubelet's exec liveness probe: a
    /// probe no connection to the port can keep out (an HTTP probe shares the node's address
    /// with every hostNetwork pod there).
    #[arg(long, value_name = "FILE", requires = "watch")]
    pub progress_file: Option<PathBuf>,
    /// With --watch: delete pods stuck in ImagePullBackOff or ErrImagePull on a registry that
    /// regops has just provided a pull secret for, when a controller owns them (so they are
    /// recreated at once, with the secret). At most 5 a second; each deletion is logged.
    #[arg(long, requires = "watch")]
    pub recycle_stuck_pods: bool,
    /// With --watch: how often the spec files are looked at for a change (SIGHUP rereads them
    /// at once).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub spec_poll: std::time::Duration,
    /// With --watch: how often a password read from a secret manager (`awsSecretsManager`,
    /// `vault`, ...) is read again when its credential has no `refreshInterval` (`1h`, `15m`).
    /// A value that changed at its source rewrites the Secrets that hold it.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub secret_refresh: std::time::Duration,
    /// With --watch: the shortest interval at which a secret manager's value is read again,
    /// whatever a spec's `refreshInterval` says (each read is a call the controller's identity
    /// makes, and may be billed for).
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    pub secret_refresh_min: std::time::Duration,
}

impl ApplyArgs {
    /// What `--watch`'s flags ask of the controller.
    pub fn controller_options(&self) -> crate::controller::ControllerOptions {
        let mut run = self.run.options();
        // The controller waits for its cluster as long as it takes (its loop retries too).
        run.cluster.connect_timeout = None;
        crate::controller::ControllerOptions {
            run,
            json_log: self.output == Format::Json,
            healthz_stall: self.healthz_stall,
            progress_file: self.progress_file.clone(),
            resync: self.resync,
            spec_poll: self.spec_poll,
            recycle_stuck_pods: self.recycle_stuck_pods,
            secret_refresh: crate::controller::refresh::Intervals {
                default: self.secret_refresh,
                // A zero floor would let a spec ask for a read at every turn of the loop.
                min: self
                    .secret_refresh_min
                    .max(std::time::Duration::from_secs(1)),
            },
        }
    }
}

/// Which cluster: kubectl's flags, with kubectl's defaults.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then the in-cluster
    /// service account).
    #[arg(long, value_name = "FILE", global = false)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current-context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// How long one API request (a LIST page, a write, the Lease) may take before it is
    /// abandoned and retried, as kubectl's flag: `30s`, `1m`, `500ms`, or plain seconds. Also
    /// the bound on each request to a cloud token endpoint, its answer included.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: std::time::Duration,
    /// The most pages one LIST may take (500 objects a page) before regops gives up on it as
    /// a server that never ends it. With --watch, a resync's LISTs too.
    #[arg(long, value_name = "N", default_value_t = crate::context::ListLimits::DEFAULT.pages, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_list_pages: u64,
    /// The most objects one LIST may return, and one watch of --watch may hold (a watch that
    /// goes past it lists again and a full apply follows).
    #[arg(long, value_name = "N", default_value_t = crate::context::ListLimits::DEFAULT.items, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_list_items: u64,
    /// How long one LIST may take, all its pages and retries included: `10m`, `90s`.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub list_timeout: std::time::Duration,
    /// How long a cluster that has not answered yet is retried when the connection is refused
    /// or the server cannot be reached, before regops gives up: `5s`, `1m`. Once it has
    /// answered, an outage gets the full retries; `apply --watch` keeps retrying.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: std::time::Duration,
}

impl ClusterArgs {
    /// The limits on each LIST, as the flags say.
    pub fn list_limits(&self) -> crate::context::ListLimits {
        crate::context::ListLimits {
            pages: self.max_list_pages,
            items: self.max_list_items,
            time: self.list_timeout,
        }
    }

    /// What the flags ask of the cluster layer.
    pub fn options(&self) -> crate::ops::options::ClusterOptions {
        crate::ops::options::ClusterOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            request_timeout: self.request_timeout,
            connect_timeout: Some(self.connect_timeout),
            list_limits: self.list_limits(),
        }
    }
}

/// `--lock-wait`: a duration, or `0` (do not wait).
pub fn parse_wait(s: &str) -> Result<std::time::Duration, regops_spec::duration::DurationError> {
    if s.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    parse_duration(s)
}

/// Every duration flag: Go's and kubectl's syntax (`90s`, `5m`, `1h30m`, `500ms`) or whole
/// seconds (`15`); see `regops_spec::duration`.
pub fn parse_duration(
    s: &str,
) -> Result<std::time::Duration, regops_spec::duration::DurationError> {
    regops_spec::duration::parse_flag(s)
}

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Spec file (.yaml, .yml, .toml) or directory of spec files; repeat to merge several.
    /// Default: `regops.yaml`, `regops.yml`, `regops.toml` or `regops/` in the current
    /// directory, whichever is there (as kustomize finds `kustomization.yaml`).
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub trust: TrustArgs,
}

impl SpecArgs {
    /// What the flags ask of the loading layer.
    pub fn options(&self) -> crate::ops::options::SpecOptions {
        crate::ops::options::SpecOptions {
            files: self.files.clone(),
            restrictor: self.trust.restrictor(),
            policy: self.trust.policy(),
        }
    }
}

/// What a spec may reach. A spec is untrusted input (a pull request writes it): by default it
/// may read files only inside its root, variables only named `REGOPS_CRED_*`, send minted
/// tokens only to their cloud's registries, and name no kubeconfig that runs a program. Each
/// flag widens one of these for a spec whose every author is trusted (docs/security.md: "What a spec
/// can do").
#[derive(Clone, Debug, Default, Args)]
#[command(next_help_heading = "What the spec may reach")]
pub struct TrustArgs {
    /// How far the paths the spec names (`file`, `ageFile`, `caFile`, a cluster's
    /// `kubeconfig`) may reach, symlinks followed: `root-only` keeps them inside the spec's
    /// directory (the -f directory, or the -f file's); `none` lets the spec name any file
    /// regops can read, as kustomize's `--load-restrictor LoadRestrictionsNone`.
    #[arg(long, value_enum, value_name = "RESTRICTOR", default_value_t = LoadRestrictor::RootOnly)]
    pub load_restrictor: LoadRestrictor,
    /// Also let `password: { env: NAME }` read variables starting with PREFIX (repeatable;
    /// `REGOPS_CRED_` always may). The variables regops and the cloud SDKs take keys from
    /// (`REGOPS_AGE_KEY*`, `SOPS_*`, `AWS_*`, `AZURE_*`, `GOOGLE_*`, `KUBECONFIG`, ...) and the
    /// CIs' own credentials (`GITHUB_TOKEN`, `GH_TOKEN`, `ACTIONS_*`, `CI_JOB_JWT*`,
    /// `CI_REGISTRY_PASSWORD`, `GITLAB_*TOKEN*`, ...) stay refused.
    #[arg(long = "allow-env", value_name = "PREFIX")]
    pub allow_env: Vec<String>,
    /// Let a kubeconfig the spec names (a cluster's `kubeconfig`) run `exec` and
    /// `auth-provider` plugins, skip TLS verification and use a plain-HTTP (`http://`) server.
    /// The operator's own kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) may always. A
    /// plugin is a program the spec's author chose, running as this job: keys withheld from its
    /// environment are still in regops' own (`/proc/PID/environ`), so give this only to specs
    /// whose every author is trusted with them.
    #[arg(long)]
    pub allow_kubeconfig_exec: bool,
    /// Also let minted tokens (`ecr`, `gcp`, `acr`) be sent to this registry host[:port]
    /// (repeatable), for a mirror or proxy you run in front of the cloud's registry.
    #[arg(long = "allow-minted-host", value_name = "HOST")]
    pub allow_minted_host: Vec<String>,
    /// Let `awsSecretsManager:`, `gcpSecretManager:`, `azureKeyVault:` and `vault:` sources
    /// read this secret (repeatable): KIND is `aws` (a `secretId`), `gcp` (the version's name,
    /// `projects/P/secrets/S/versions/V`), `azure` (`VAULT/SECRET`) or `vault` (`MOUNT/PATH`);
    /// PATTERN a name, or a prefix ending in `*` (`aws:registry/*`). None by default: whoever
    /// edits the spec may send an allowed secret to any registry the spec names.
    #[arg(long = "allow-secret", value_name = "KIND:PATTERN", value_parser = regops_spec::trust::AllowedSecret::parse)]
    pub allow_secret: Vec<regops_spec::trust::AllowedSecret>,
    /// The Vault role `vault:` sources log in with by Kubernetes auth (the pod's
    /// service-account token), when VAULT_TOKEN is not set; else VAULT_ROLE.
    #[arg(long = "vault-role", value_name = "ROLE")]
    pub vault_role: Option<String>,
    /// How `vault:` sources log in to Vault: `token` (VAULT_TOKEN), `kubernetes` (Kubernetes
    /// auth with the pod's service-account token and --vault-role) or `jwt` (JWT/OIDC auth
    /// with the JWT in VAULT_JWT_FILE, else the pod's service-account token, and
    /// --vault-role); else VAULT_AUTH; else VAULT_TOKEN when set, Kubernetes auth when not.
    #[arg(long = "vault-auth", value_enum, value_name = "METHOD")]
    pub vault_auth: Option<VaultAuth>,
}

/// How `vault:` sources log in to Vault (`--vault-auth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VaultAuth {
    /// VAULT_TOKEN.
    Token,
    /// Kubernetes auth (`auth/<VAULT_K8S_AUTH_MOUNT>/login`).
    Kubernetes,
    /// JWT/OIDC auth (`auth/<VAULT_JWT_AUTH_MOUNT>/login`).
    Jwt,
}

impl TrustArgs {
    /// The policy the spec is checked and read under.
    pub fn policy(&self) -> regops_spec::trust::Policy {
        regops_spec::trust::Policy {
            allow_env: self.allow_env.clone(),
            allow_kubeconfig_exec: self.allow_kubeconfig_exec,
            allow_minted_hosts: self.allow_minted_host.clone(),
            allow_secrets: self.allow_secret.clone(),
            vault_role: self.vault_role.clone(),
            vault_auth: self.vault_auth.map(|a| match a {
                VaultAuth::Token => regops_spec::trust::VaultAuth::Token,
                VaultAuth::Kubernetes => regops_spec::trust::VaultAuth::Kubernetes,
                VaultAuth::Jwt => regops_spec::trust::VaultAuth::Jwt,
            }),
        }
    }

    pub fn restrictor(&self) -> regops_spec::trust::LoadRestrictor {
        match self.load_restrictor {
            LoadRestrictor::RootOnly => regops_spec::trust::LoadRestrictor::RootOnly,
            LoadRestrictor::None => regops_spec::trust::LoadRestrictor::None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LoadRestrictor {
    /// Files inside the spec's root only.
    #[default]
    #[value(alias = "LoadRestrictionsRootOnly")]
    RootOnly,
    /// Any file regops can read.
    #[value(alias = "LoadRestrictionsNone")]
    None,
}

#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// age identity file (or unencrypted OpenSSH private key); repeatable. Without it, regops
    /// reads REGOPS_AGE_KEY, REGOPS_AGE_KEY_FILE, SOPS_AGE_KEY, SOPS_AGE_KEY_FILE,
    /// SOPS_AGE_SSH_PRIVATE_KEY_FILE, SOPS_AGE_KEY_CMD and the default sops and regops key files.
    #[arg(short = 'i', long = "identity", value_name = "FILE")]
    pub identity: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Only validate the spec; do not decrypt or read credentials.
    #[arg(long)]
    pub no_decrypt: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Render for these namespaces (comma-separated or repeated), as -n in plan and apply.
    #[arg(
        short = 'n',
        long = "namespace",
        alias = "namespaces",
        value_name = "NS",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// Put the real `.dockerconfigjson` in the output (for kubectl or an Argo CD plugin).
    /// Without it, secret data is replaced by a placeholder.
    #[arg(long)]
    pub show_secrets: bool,
    /// Render instead the node configuration that makes a container runtime trust the
    /// registries marked `insecure: true` or given a `caFile` (docs/node-trust.md). Needs no
    /// identity: nothing is decrypted.
    #[arg(long, value_name = "RUNTIME", conflicts_with_all = ["show_secrets", "namespaces"])]
    pub node_config: Option<NodeRuntime>,
    /// With --node-config: write the files into DIR, laid out as under the runtime's directory
    /// on the node (for containerd, DIR/<host[:port]>/hosts.toml), instead of to stdout.
    #[arg(long, value_name = "DIR", requires = "node_config")]
    pub output_dir: Option<PathBuf>,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

#[derive(Debug, Args)]
pub struct NodeSyncArgs {
    /// The YAML stream `regops render --node-config containerd` printed (in the cluster, the
    /// ConfigMap `regops apply` keeps, mounted).
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// containerd's certs.d directory, as this process sees it (in the DaemonSet, the hostPath
    /// mount).
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// A registry host (`host[:port]`, as in image references) whose node trust may be written
    /// (comma-separated or repeated). Hosts not listed are refused.
    #[arg(long = "allow-host", value_name = "HOST", value_delimiter = ',')]
    pub allow_host: Vec<String>,
    /// containerd's config.toml, read only, to report whether containerd reads --root.
    #[arg(long, value_name = "FILE")]
    pub containerd_config: Option<PathBuf>,
    /// The directory --root is on the node, which containerd's config_path must name.
    #[arg(long, value_name = "DIR", default_value = "/etc/containerd/certs.d")]
    pub node_path: String,
    /// Sync again every DURATION (`1m`, `30s`) instead of once, reading --from anew each
    /// time (a mounted ConfigMap is updated in place).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<std::time::Duration>,
}

/// A container runtime whose node trust `render --node-config` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NodeRuntime {
    /// certs.d/<host[:port]>/hosts.toml (containerd 1.5 and later; k8s nodes, kubeadm, EKS, GKE)
    Containerd,
    /// /etc/rancher/k3s/registries.yaml
    K3s,
    /// /etc/rancher/rke2/registries.yaml
    Rke2,
    /// daemon.json `insecure-registries` and certs.d/<host[:port]>/ca.crt
    Docker,
    /// /etc/containers/certs.d/<host[:port]>/ca.crt and a registries.conf.d drop-in (CRI-O, podman)
    Crio,
}

impl From<NodeRuntime> for regops_core::node_trust::Runtime {
    fn from(r: NodeRuntime) -> Self {
        use regops_core::node_trust::Runtime;
        match r {
            NodeRuntime::Containerd => Runtime::Containerd,
            NodeRuntime::K3s => Runtime::K3s,
            NodeRuntime::Rke2 => Runtime::Rke2,
            NodeRuntime::Docker => Runtime::Docker,
            NodeRuntime::Crio => Runtime::Crio,
        }
    }
}

#[derive(Debug, Args)]
pub struct AliveArgs {
    /// The controller's --progress-file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// How long without progress counts as stuck.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub stall: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write the identity to this file (created with mode 0600; never overwritten) instead of
    /// standard output. (`-o`/`--output` still work, with a warning: elsewhere `-o` is a
    /// format.)
    #[arg(
        long = "out",
        short_alias = 'o',
        alias = "output",
        value_name = "FILE",
        conflicts_with = "public"
    )]
    pub output: Option<PathBuf>,
    /// Print the public key of an existing identity file instead.
    #[arg(long, value_name = "IDENTITY")]
    pub public: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EncryptArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// The credential (under `credentials:`) whose password to set.
    #[arg(long, short = 'c', value_name = "NAME")]
    pub credential: String,
    /// Write the ciphertext to this file (relative to the spec file) and reference it as
    /// `{ ageFile: PATH }`, instead of inline.
    #[arg(long, value_name = "PATH")]
    pub age_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Only these namespaces (comma-separated or repeated).
    #[arg(
        short = 'n',
        long = "namespace",
        value_name = "NS",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// Only the namespaces this label selector selects (`team=web`, `env in (prod)`).
    #[arg(long, short = 'l', value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// The spec file to write (YAML). (`-o`/`--output` still work, with a warning: elsewhere
    /// `-o` is a format.)
    #[arg(
        long = "out",
        short_alias = 'o',
        alias = "output",
        value_name = "FILE",
        required_unless_present = "dry_run"
    )]
    pub output: Option<PathBuf>,
    /// An age recipient (`age1...`) or SSH public key the passwords are encrypted to
    /// (repeatable). At least one, here or in --recipients-file, is required.
    #[arg(long, short = 'r', value_name = "RECIPIENT")]
    pub recipient: Vec<String>,
    /// A file of recipients, one per line (`#` comments and blank lines skipped).
    #[arg(long, short = 'R', value_name = "FILE")]
    pub recipients_file: Vec<PathBuf>,
    /// The spec's `metadata.name` (default: the output file's name without extension).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print the spec (passwords redacted) instead of writing it.
    #[arg(long)]
    pub dry_run: bool,
    /// Also write a scope as a label selector when one label selects exactly the namespaces a
    /// pull secret was found in (by default the namespaces are listed by name: a label that
    /// happens to fit today, `pod-security.kubernetes.io/enforce: baseline` say, would hand
    /// the credentials to every namespace given it later). Rancher projects and KubeSphere
    /// workspaces are always used.
    #[arg(long)]
    pub infer_selectors: bool,
}

impl ApplyArgs {
    /// What the flags ask of `ops::apply` and the session.
    pub fn options(&self) -> crate::ops::options::ApplyOptions {
        crate::ops::options::ApplyOptions {
            run: self.run.options(),
            lock: crate::ops::options::LockOptions {
                namespace: self.lock_namespace.clone(),
                name: self.lock_name.clone(),
                times: crate::cluster::lock::Times {
                    duration: self.lock_duration,
                    renew_deadline: self.renew_deadline,
                    retry_period: self.retry_period,
                },
                wait: self.lock_wait,
            },
            writes: crate::ops::session::Writes {
                prune: self.prune,
                dry_run: self.dry_run.is_some(),
                force_conflicts: self.force_conflicts,
                concurrency: usize::from(self.concurrency),
            },
        }
    }
}

impl ImportArgs {
    /// What the flags ask of `ops::import`.
    pub fn options(&self) -> crate::ops::options::ImportOptions {
        crate::ops::options::ImportOptions {
            cluster: self.cluster.options(),
            recipients: self.recipient.clone(),
            recipients_files: self.recipients_file.clone(),
            namespaces: self.namespaces.clone(),
            selector: self.selector.clone(),
            name: self.name.clone(),
            output: self.output.clone(),
            force: self.force,
            dry_run: self.dry_run,
            infer_selectors: self.infer_selectors,
        }
    }
}

#[derive(Debug, Args)]
pub struct RekeyArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn vault_auth_and_every_secret_kind_parse_into_the_policy() {
        let policy = |extra: &[&str]| {
            let mut args = vec!["regops", "check", "-f", "x.yaml"];
            args.extend_from_slice(extra);
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::Check(a) = cli.command else {
                panic!("not check")
            };
            a.spec.trust.policy()
        };
        assert_eq!(policy(&[]).vault_auth, None);
        for (name, auth) in regops_spec::trust::VaultAuth::ALL {
            assert_eq!(
                policy(&["--vault-auth", name]).vault_auth,
                Some(auth),
                "{name}"
            );
        }
        assert!(
            Cli::try_parse_from(["regops", "check", "--vault-auth", "oidc"]).is_err(),
            "an unknown method"
        );
        let p = policy(&[
            "--allow-secret",
            "gcp:projects/my-project/secrets/registry-*",
            "--allow-secret",
            "azure:myvault/registry-*",
        ]);
        use regops_spec::trust::SecretKind;
        assert!(p.allow_secrets[0].allows(
            SecretKind::Gcp,
            "projects/my-project/secrets/registry-harbor/versions/latest"
        ));
        assert!(p.allow_secrets[1].allows(SecretKind::Azure, "myvault/registry-acr"));
        assert!(!p.allow_secrets[1].allows(SecretKind::Azure, "othervault/registry-acr"));
    }

    #[test]
    fn namespaces_split_on_commas() {
        let cli = Cli::try_parse_from([
            "regops",
            "render",
            "-f",
            "x.yaml",
            "--namespaces",
            "a,b",
            "-n",
            "c",
        ])
        .unwrap();
        let Command::Render(r) = cli.command else {
            panic!("not render")
        };
        assert_eq!(r.namespaces, ["a", "b", "c"]);
    }

    #[test]
    fn the_spec_file_may_be_left_to_the_current_directory() {
        // -f is optional: the command finds regops.yaml, regops.toml or regops/ (tested in
        // tests/it/cli_defaults.rs).
        for cmd in ["check", "apply", "plan", "drift", "render", "validate"] {
            let cli = Cli::try_parse_from(["regops", cmd]).unwrap();
            let files = match cli.command {
                Command::Check(a) => a.spec.files,
                Command::Apply(a) => a.run.spec.files,
                Command::Plan(a) => a.run.spec.files,
                Command::Drift(a) => a.run.spec.files,
                Command::Render(a) => a.spec.files,
                Command::Validate(a) => a.spec.files,
                _ => panic!("{cmd}"),
            };
            assert!(files.is_empty(), "{cmd}");
        }
    }

    /// `--dry-run` is server-side; `=client` and `=none` are kubectl's too.
    #[test]
    fn dry_run_takes_kubectls_values() {
        let dry = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::Apply(a) = cli.command else {
                panic!("not apply")
            };
            a.dry_run
        };
        assert_eq!(dry(&["regops", "apply", "--dry-run"]), Some(DryRun::Server));
        assert_eq!(
            dry(&["regops", "apply", "--dry-run=server"]),
            Some(DryRun::Server)
        );
        assert_eq!(
            dry(&["regops", "apply", "--dry-run=client"]),
            Some(DryRun::Client)
        );
        assert_eq!(
            dry(&["regops", "apply", "--dry-run=none"]),
            Some(DryRun::None)
        );
        assert_eq!(dry(&["regops", "apply"]), None);
    }

    /// A file is `--out` everywhere; keygen's and import's `-o FILE` still parse (with a
    /// warning at run time).
    #[test]
    fn files_are_out_and_the_old_o_still_parses() {
        for args in [
            &["regops", "keygen", "--out", "k.txt"][..],
            &["regops", "keygen", "-o", "k.txt"],
            &["regops", "keygen", "--output", "k.txt"],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::Keygen(k) = cli.command else {
                panic!("not keygen")
            };
            assert_eq!(k.output, Some(PathBuf::from("k.txt")), "{args:?}");
        }
        assert!(
            Cli::try_parse_from([
                "regops",
                "import",
                "--out",
                "x.yaml",
                "--recipient",
                "age1x"
            ])
            .is_ok()
        );
    }

    /// `apply FILE` finds the spec in the saved plan; with -f too, that spec is used.
    #[test]
    fn a_saved_plan_makes_the_spec_file_optional() {
        let cli = Cli::try_parse_from(["regops", "apply", "plan.json", "--yes"]).unwrap();
        let Command::Apply(a) = cli.command else {
            panic!("not apply")
        };
        assert_eq!(a.plan_file, Some(PathBuf::from("plan.json")));
        assert!(a.run.spec.files.is_empty());
        assert!(Cli::try_parse_from(["regops", "apply", "plan.json", "-f", "x.yaml"]).is_ok());
        assert!(Cli::try_parse_from(["regops", "apply", "plan.json", "--watch"]).is_err());
        assert!(Cli::try_parse_from(["regops", "apply", "plan.json", "-n", "web"]).is_err());
    }

    /// The limits on a LIST default to what docs/scale.md says, for every command that reads
    /// a cluster.
    #[test]
    fn list_limits_default_as_documented() {
        let limits = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            match cli.command {
                Command::Plan(a) => a.run.cluster.list_limits(),
                Command::Apply(a) => a.run.cluster.list_limits(),
                Command::Drift(a) => a.run.cluster.list_limits(),
                Command::Import(a) => a.cluster.list_limits(),
                Command::ClusterInfo(a) => a.list_limits(),
                _ => panic!("no cluster flags"),
            }
        };
        let default = crate::context::ListLimits {
            pages: 1_000,
            items: 500_000,
            time: std::time::Duration::from_secs(600),
        };
        assert_eq!(crate::context::ListLimits::DEFAULT, default);
        for args in [
            &["regops", "plan", "-f", "x.yaml"][..],
            &["regops", "apply", "-f", "x.yaml", "--watch"],
            &["regops", "drift", "-f", "x.yaml"],
            &["regops", "import", "-o", "x.yaml", "--recipient", "age1x"],
            &["regops", "cluster-info"],
        ] {
            assert_eq!(limits(args), default, "{args:?}");
        }
        let set = limits(&[
            "regops",
            "plan",
            "-f",
            "x.yaml",
            "--max-list-pages",
            "3",
            "--max-list-items",
            "40",
            "--list-timeout",
            "90s",
        ]);
        assert_eq!(
            set,
            crate::context::ListLimits {
                pages: 3,
                items: 40,
                time: std::time::Duration::from_secs(90)
            }
        );
        assert!(
            Cli::try_parse_from(["regops", "plan", "-f", "x", "--max-list-pages", "0"]).is_err()
        );
    }

    #[test]
    fn no_password_flag_exists() {
        assert!(
            Cli::try_parse_from([
                "regops",
                "encrypt",
                "-f",
                "x.yaml",
                "-c",
                "a",
                "--password",
                "p"
            ])
            .is_err()
        );
    }
}
