//! The `anchorgate` command line: `serve` runs the gateway; `check-config` validates a configuration;
//! `validate` checks FHIR resource files against base R4 and profiles.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anchorgate::config::{self, Config, Overrides};

// mimalloc: validation allocates many small short-lived JSON values; with glibc malloc over half of a
// Patient's validation time went to its free lists (perf), mimalloc cut that time by 19% (criterion,
// `validate/synthea_patient_parse_and_validate`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use anchorgate::server::{self, Gateway};
use clap::{Args, Parser, Subcommand};

/// Anchorgate: a FHIR R4 gateway in front of an existing EHR.
///
/// It proxies the EHR's FHIR API, re-homes every URL under its own public base, and answers every
/// failure with a FHIR OperationOutcome. Settings come from a TOML file, then ANCHORGATE_* environment
/// variables, then flags (later wins).
#[derive(Debug, Parser)]
#[command(name = "anchorgate", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: listen, proxy the upstream FHIR API, serve /healthz, /readyz and /metrics.
    ///
    /// Stops gracefully on SIGTERM or Ctrl-C: no new connections, in-flight requests drained.
    Serve(ConfigArgs),
    /// Load and validate the configuration, print it, and exit (0 valid, 2 invalid).
    CheckConfig(ConfigArgs),
    /// Validate FHIR resource files (JSON, or XML by the `.xml` extension) against base R4, the known
    /// profiles in their meta.profile (R4 core, IPS 2.0.0, and any loaded), and any --profile.
    ///
    /// Prints one JSON line per file: {"file", "valid", "outcome": OperationOutcome}. Exits 0 if all
    /// are valid, 1 if any is not, 2 on a usage error (a file that cannot be read or loaded, an unknown
    /// profile).
    Validate(ValidateArgs),
    /// Make a signing key, written to --out with mode 0600 (an existing file is never overwritten).
    ///
    /// --kind ledger (default): an Ed25519 key for the ledger; prints the verifier key in signed-note
    /// form (name+keyid+base64). --kind issuer (TEST/DEV ONLY): a token issuer key (PKCS#8 PEM) for
    /// `anchorgate token`; prints its public JWKS (and writes it to --jwks-out).
    Keygen(KeygenArgs),
    /// TEST/DEV ONLY: mint a signed access token (JWT) with an issuer key and print it.
    ///
    /// Adds iat (now), exp (now + --ttl) and a random jti unless the claims give them. The kid is the
    /// key's RFC 7638 thumbprint unless --kid names one, matching `keygen --kind issuer`'s JWKS.
    Token(TokenArgs),
    /// The ledger: verify a log, erase a resource's salts.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Consents: import those already in the upstream.
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// Decision records: export them for compliance review.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Write the decision records (all, or those matching --filter) to stdout as NDJSON or CSV,
    /// oldest first. Reads the store of the configured data directory; safe while the gateway runs,
    /// though a running gateway stores decisions in batches, so its last 10 ms may not be there yet
    /// (`GET /audit/decisions` waits for them). Exits 0 on success, 2 on a usage error or an
    /// unreadable store.
    Export(AuditExportArgs),
}

#[derive(Debug, Args)]
struct AuditExportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "ndjson")]
    format: anchorgate::audit::export::Format,
    /// A filter as `name=value`, repeatable: patient, actor, organization, outcome, purpose,
    /// break_glass, from, to (the parameters of GET /audit/decisions).
    #[arg(long = "filter", value_name = "NAME=VALUE")]
    filters: Vec<String>,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, Subcommand)]
enum ConsentCommand {
    /// Anchor and index every Consent already in the upstream (written before the gateway was in
    /// front of it), so that they are enforced. Versions already anchored keep their leaf. Runs on a
    /// stopped gateway's config (it takes the ledger's lock). Prints one JSON line; exits 0 on
    /// success, 2 on any failure.
    Import(ConfigArgs),
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Verify a whole log from a URL or a mirror directory: the checkpoint's signature, every entry
    /// well-formed, every tile and entry recomputing to the checkpoint's root, and consistency with the
    /// checkpoint remembered in --state (a fork or rollback fails). Prints one JSON line; exits 0 when
    /// everything verifies, 1 when anything does not, 2 on usage errors.
    Verify(LedgerVerifyArgs),
    /// GDPR erasure: delete the salts of every ledger entry of one resource (its anchors can never be
    /// linked to content again; the tree and proofs stay valid) and record the erasure as a key-event
    /// entry with no identifier. Runs on a stopped gateway's ledger (the same config and key).
    Erase(LedgerEraseArgs),
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false, id = "source")]
struct LedgerSource {
    /// The log's URL prefix, e.g. https://gw.example.org/ledger.
    #[arg(long, group = "source")]
    url: Option<String>,
    /// A mirror directory holding `checkpoint` and `tile/` (e.g. <data_dir>/ledger/log).
    #[arg(long, group = "source")]
    dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct LedgerVerifyArgs {
    #[command(flatten)]
    source: LedgerSource,
    /// The log's verifier key (name+keyid+base64), as `anchorgate keygen` printed it.
    #[arg(long)]
    key: String,
    /// A file remembering the last verified checkpoint; created if missing, updated on success.
    #[arg(long)]
    state: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct LedgerEraseArgs {
    /// The resource type.
    #[arg(long = "type")]
    rtype: String,
    /// The resource id.
    #[arg(long)]
    id: String,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// What the key signs: the ledger's checkpoints, or (test/dev only) access tokens.
    #[arg(long, value_enum, default_value_t = KeyKind::Ledger)]
    kind: KeyKind,
    /// The key name; for the ledger, the log's origin line (e.g. fhir.example.org/ledger). Required
    /// for ledger keys.
    #[arg(long)]
    origin: Option<String>,
    /// Where to write the signing key; an existing file is never overwritten.
    #[arg(long)]
    out: PathBuf,
    /// Issuer keys: ES256, ES384 or EdDSA.
    #[arg(long, default_value = "ES256")]
    alg: String,
    /// Issuer keys: the JWKS kid (default: the key's RFC 7638 thumbprint).
    #[arg(long)]
    kid: Option<String>,
    /// Issuer keys: also write the public JWKS to this file (never overwritten).
    #[arg(long)]
    jwks_out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum KeyKind {
    /// The ledger's Ed25519 checkpoint key.
    Ledger,
    /// A token issuer key, for development and tests.
    Issuer,
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The issuer's private key: PKCS#8 PEM from `keygen --kind issuer`, or an RSA PEM (PKCS#8/PKCS#1).
    #[arg(long)]
    issuer_key: PathBuf,
    /// The claims, a JSON object, e.g. '{"iss":"https://idp.test","aud":"http://127.0.0.1:8080/fhir","sub":"Practitioner/prac-a","scope":"user/*.rs"}'.
    #[arg(long)]
    claims: String,
    /// The header kid (default: the key's RFC 7638 thumbprint).
    #[arg(long)]
    kid: Option<String>,
    /// Lifetime in seconds, for the exp added when the claims have none.
    #[arg(long, default_value_t = 300)]
    ttl: u64,
    /// The algorithm, for an RSA key: RS256 (default) or RS384. Other keys fix their own.
    #[arg(long)]
    alg: Option<String>,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// A profile every file must conform to: a canonical URL (embedded or loaded), or a file holding a
    /// StructureDefinition. Repeatable.
    #[arg(long, value_name = "URL-or-FILE")]
    profile: Vec<String>,
    /// Load definitions for this run: a StructureDefinition, ValueSet, CodeSystem or Bundle of them
    /// (JSON or XML), or a directory of such files. Repeatable.
    #[arg(long, value_name = "FILE")]
    load: Vec<PathBuf>,
    /// Judge as strictly as the HL7 validator's defaults: unknown extensions and wrong Coding displays
    /// are errors (the gateway's `validation.strict_extensions` and `validation.check_displays`).
    #[arg(long)]
    strict: bool,
    /// Resource files to validate.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// TOML config file.
    #[arg(long, short, env = config::ENV_CONFIG)]
    config: Option<PathBuf>,
    /// Upstream FHIR base URL, e.g. http://127.0.0.1:8090/fhir.
    #[arg(long, env = config::ENV_UPSTREAM)]
    upstream: Option<String>,
    /// Listen address, IP:PORT (default 127.0.0.1:8080).
    #[arg(long, env = config::ENV_LISTEN)]
    listen: Option<String>,
    /// Public FHIR base URL clients use, e.g. https://fhir.example.org/fhir (default: from Host).
    #[arg(long, env = config::ENV_PUBLIC_BASE)]
    public_base: Option<String>,
    /// Directory for the gateway's own state.
    #[arg(long, env = config::ENV_DATA_DIR)]
    data_dir: Option<PathBuf>,
    /// Worker threads (0 = one per core).
    #[arg(long, env = config::ENV_WORKER_THREADS)]
    worker_threads: Option<usize>,
    /// Log filter, e.g. info or anchorgate=debug.
    #[arg(long, env = config::ENV_LOG)]
    log: Option<String>,
    /// Log format: json or pretty.
    #[arg(long, env = config::ENV_LOG_FORMAT)]
    log_format: Option<String>,
    /// The ledger's signing key file (from `anchorgate keygen`).
    #[arg(long, env = config::ENV_LEDGER_KEY_FILE)]
    ledger_key_file: Option<PathBuf>,
    /// Development only: sign the ledger with a throw-away key made at start (logged loudly).
    #[arg(long)]
    ephemeral_ledger_key: bool,
    /// What applies when no consent of the patient does: deny (opt-in) or permit (opt-out).
    #[arg(long, env = config::ENV_DEFAULT_POLICY)]
    default_policy: Option<String>,
}

impl ConfigArgs {
    fn load(self) -> Result<Config, config::ConfigError> {
        let mut cfg = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        cfg.apply_overrides(Overrides {
            upstream: self.upstream,
            listen: self.listen,
            public_base: self.public_base,
            data_dir: self.data_dir,
            worker_threads: self.worker_threads,
            log_level: self.log,
            log_format: self.log_format,
            ledger_key_file: self.ledger_key_file,
            ephemeral_ledger_key: self.ephemeral_ledger_key,
            default_policy: self.default_policy,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => match args.load() {
            Ok(cfg) => serve(cfg),
            Err(e) => usage_error(&e),
        },
        Command::CheckConfig(args) => match args.load() {
            Ok(cfg) => {
                println!("{cfg:#?}");
                ExitCode::SUCCESS
            }
            Err(e) => usage_error(&e),
        },
        Command::Validate(args) => validate_files(&args),
        Command::Keygen(args) if args.kind == KeyKind::Issuer => issuer_keygen(&args),
        Command::Keygen(args) => keygen(&args),
        Command::Token(args) => mint_token(&args),
        Command::Ledger(LedgerCommand::Verify(args)) => ledger_verify(&args),
        Command::Ledger(LedgerCommand::Erase(args)) => ledger_erase(args),
        Command::Consent(ConsentCommand::Import(args)) => consent_import(args),
        Command::Audit(AuditCommand::Export(args)) => audit_export(args),
    }
}

fn consent_import(args: ConfigArgs) -> ExitCode {
    let cfg = match args.load() {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    let result = one_shot_runtime().and_then(|rt| {
        rt.block_on(async {
            let gw = anchorgate::server::state::Gateway::new(cfg).map_err(|e| e.to_string())?;
            let Some(ledger) = gw.ledger.clone() else {
                return Err(
                    "the ledger is disabled (ledger.enabled = false): nothing can be anchored"
                        .to_owned(),
                );
            };
            let report = anchorgate::server::consents::import(&gw, &ledger)
                .await
                .map_err(|e| e.to_string());
            ledger.shutdown();
            report
        })
    });
    match result {
        Ok(report) => {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("anchorgate consent import: {e}");
            ExitCode::from(2)
        }
    }
}

fn audit_export(args: AuditExportArgs) -> ExitCode {
    let cfg = match args.config.load() {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    let mut pairs = Vec::new();
    for f in &args.filters {
        match f.split_once('=') {
            Some((k, v)) if !v.is_empty() && k != "after" && k != "_count" => {
                pairs.push((k.to_owned(), v.to_owned()))
            }
            _ => {
                eprintln!("anchorgate audit export: --filter {f:?}: expected NAME=VALUE");
                return ExitCode::from(2);
            }
        }
    }
    let query = match anchorgate::audit::query::decisions(&pairs) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("anchorgate audit export: --filter {e}");
            return ExitCode::from(2);
        }
    };
    let path = cfg.data_dir.join("store.sqlite");
    if !path.exists() {
        eprintln!("anchorgate audit export: no store at {}", path.display());
        return ExitCode::from(2);
    }
    let store = match anchorgate::store::Store::open(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("anchorgate audit export: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout().lock();
    match anchorgate::audit::export::export(
        &store,
        query,
        args.format,
        std::io::BufWriter::new(stdout),
    ) {
        Ok(n) => {
            eprintln!("anchorgate audit export: {n} decision record(s)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("anchorgate audit export: {e}");
            ExitCode::from(2)
        }
    }
}

/// A runtime for a one-shot command.
fn one_shot_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn ledger_verify(args: &LedgerVerifyArgs) -> ExitCode {
    use anchorgate::ledger::note::NoteVerifier;
    use anchorgate::ledger::verify::{verify, DirSource, HttpSource, LogSource};
    let key = match NoteVerifier::parse(&args.key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("anchorgate ledger verify: --key: {e}");
            return ExitCode::from(2);
        }
    };
    let source: Box<dyn LogSource> = match (&args.source.url, &args.source.dir) {
        (Some(url), _) => match HttpSource::new(url) {
            Ok(s) => Box::new(s),
            Err(e) => {
                eprintln!("anchorgate ledger verify: {e}");
                return ExitCode::from(2);
            }
        },
        (None, Some(dir)) => Box::new(DirSource { root: dir.clone() }),
        (None, None) => return ExitCode::from(2),
    };
    match verify(source.as_ref(), &key, args.state.as_deref()) {
        Ok(report) => {
            let mut line = serde_json::to_value(&report).unwrap_or_default();
            line["ok"] = true.into();
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{}", serde_json::json!({"ok": false, "error": e}));
            eprintln!("anchorgate ledger verify: FAILED: {e}");
            ExitCode::from(1)
        }
    }
}

fn ledger_erase(args: LedgerEraseArgs) -> ExitCode {
    let cfg = match args.config.load() {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    if anchorgate::fhir::route::resource_type(&args.rtype).is_none() {
        eprintln!(
            "anchorgate ledger erase: {:?} is not an R4 resource type",
            args.rtype
        );
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("anchorgate ledger erase: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let ledger = anchorgate::ledger::Ledger::open(&cfg.ledger, &cfg.ledger_dir())?;
        let out = ledger.erase(&args.rtype, &args.id).await?;
        ledger.shutdown();
        Ok::<_, anchorgate::ledger::LedgerError>(out)
    });
    match result {
        Ok((erased, event)) => {
            println!(
                "{}",
                serde_json::json!({"erased_leaves": erased, "key_event_leaf": event})
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("anchorgate ledger erase: {e}");
            ExitCode::from(2)
        }
    }
}

fn keygen(args: &KeygenArgs) -> ExitCode {
    let Some(origin) = args.origin.as_deref() else {
        eprintln!("anchorgate keygen: --origin is required for a ledger key");
        return ExitCode::from(2);
    };
    let signer = match anchorgate::ledger::note::NoteSigner::generate(origin) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("anchorgate keygen: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = write_new(&args.out, &format!("{}\n", signer.encode()), 0o600) {
        eprintln!("anchorgate keygen: {}: {e}", args.out.display());
        return ExitCode::from(2);
    }
    println!("{}", signer.verifier().encode());
    ExitCode::SUCCESS
}

/// Writes a new file with `mode`; an existing file is never overwritten.
fn write_new(path: &std::path::Path, contents: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

/// `anchorgate keygen --kind issuer`: a TEST/DEV token issuer key and its public JWKS.
fn issuer_keygen(args: &KeygenArgs) -> ExitCode {
    use anchorgate::identity::{keys::IssuerKey, SigAlg};
    let Some(alg) = SigAlg::from_name(&args.alg) else {
        eprintln!(
            "anchorgate keygen: --alg {}: expected ES256, ES384 or EdDSA",
            args.alg
        );
        return ExitCode::from(2);
    };
    let (key, pem) = match IssuerKey::generate(alg) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("anchorgate keygen: {e}");
            return ExitCode::from(2);
        }
    };
    let kid = args.kid.clone().unwrap_or_else(|| key.thumbprint());
    let jwks = format!("{:#}\n", key.jwks(&kid));
    if let Err(e) = write_new(&args.out, &pem, 0o600) {
        eprintln!("anchorgate keygen: {}: {e}", args.out.display());
        return ExitCode::from(2);
    }
    if let Some(path) = &args.jwks_out {
        if let Err(e) = write_new(path, &jwks, 0o644) {
            eprintln!("anchorgate keygen: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    print!("{jwks}");
    ExitCode::SUCCESS
}

/// `anchorgate token`: a TEST/DEV access token signed with an issuer key.
fn mint_token(args: &TokenArgs) -> ExitCode {
    use anchorgate::identity::{keys, SigAlg};
    let fail = |msg: String| {
        eprintln!("anchorgate token: {msg}");
        ExitCode::from(2)
    };
    let alg = match args.alg.as_deref().map(|a| (a, SigAlg::from_name(a))) {
        None => None,
        Some((_, Some(alg))) => Some(alg),
        Some((a, None)) => {
            return fail(format!(
                "--alg {a}: expected ES256, ES384, RS256, RS384 or EdDSA"
            ))
        }
    };
    let pem = match std::fs::read(&args.issuer_key) {
        Ok(p) => p,
        Err(e) => return fail(format!("{}: {e}", args.issuer_key.display())),
    };
    let key = match keys::IssuerKey::from_pem(&pem, alg) {
        Ok(k) => k,
        Err(e) => return fail(format!("{}: {e}", args.issuer_key.display())),
    };
    let claims = match serde_json::from_str(&args.claims) {
        Ok(c) => c,
        Err(e) => return fail(format!("--claims is not JSON: {e}")),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match keys::mint(&key, args.kid.as_deref(), claims, args.ttl, now) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.to_string()),
    }
}

/// The validator for a `validate` run (the embedded one, or an overlay with `--load` and file
/// `--profile`s) and the profile URLs to check; a usage error message otherwise.
fn validation_setup(
    args: &ValidateArgs,
) -> Result<(anchorgate::validate::Validator, Vec<String>), String> {
    use anchorgate::validate::definitions::{read_resource, Definitions};
    use anchorgate::validate::Validator;

    let mut defs = Definitions::default();
    for path in &args.load {
        defs.load_path(path).map_err(|e| e.to_string())?;
    }
    let mut urls = Vec::new();
    for p in &args.profile {
        let path = std::path::Path::new(p);
        if !p.contains("://") && !p.starts_with("urn:") && path.exists() {
            let sd = read_resource(path).map_err(|e| e.to_string())?;
            let url = sd
                .get("url")
                .and_then(|u| u.as_str())
                .filter(|_| sd["resourceType"] == "StructureDefinition")
                .ok_or_else(|| format!("{p} is not a StructureDefinition with a url"))?
                .to_owned();
            defs.add(sd);
            urls.push(url);
        } else {
            urls.push(p.clone());
        }
    }
    let validator = Validator::r4().with_definitions(&defs);
    for url in &urls {
        if let Some(why) = validator.profile_problem(url) {
            return Err(format!("profile {url} cannot be used: {why}"));
        }
        if !validator.knows_profile(url) {
            return Err(format!("unknown profile {url}"));
        }
    }
    Ok((validator, urls))
}

/// `anchorgate validate`: every file is read (and every definition loaded) before any is validated, so
/// an unreadable one is a usage error (exit 2) with no partial output.
fn validate_files(args: &ValidateArgs) -> ExitCode {
    use anchorgate::fhir::{Format, Issue, IssueType, OperationOutcome, Severity};
    use anchorgate::validate::{is_valid, ValidateOptions};

    let files = &args.files;
    let (validator, profiles) = match validation_setup(args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("anchorgate: {e}");
            return ExitCode::from(2);
        }
    };
    let options = ValidateOptions::with_profiles(profiles)
        .json_schema(true)
        .strict_extensions(args.strict)
        .check_displays(args.strict);
    let mut bodies = Vec::with_capacity(files.len());
    for path in files {
        match std::fs::read(path) {
            Ok(b) => bodies.push(b),
            Err(e) => {
                eprintln!("anchorgate: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    let mut all_valid = true;
    for (path, body) in files.iter().zip(&bodies) {
        let format = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
        {
            Format::Xml
        } else {
            Format::Json
        };
        let mut outcome = match anchorgate::fhir::parse::parse(format, body) {
            Ok(resource) => validator.validate_with(&resource, &options),
            Err(e) => OperationOutcome::single(Issue::error(IssueType::Structure, e.to_string())),
        };
        let valid = is_valid(&outcome);
        // An OperationOutcome needs at least one issue.
        if outcome.issues.is_empty() {
            outcome.issues.push(Issue {
                severity: Severity::Information,
                code: IssueType::Informational,
                diagnostics: "no issues found".into(),
                expression: Vec::new(),
            });
        }
        all_valid &= valid;
        let line = serde_json::json!({
            "file": path.display().to_string(),
            "valid": valid,
            "outcome": outcome.to_json(),
        });
        println!("{line}");
    }
    if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn usage_error(e: &config::ConfigError) -> ExitCode {
    eprintln!("anchorgate: {e}");
    ExitCode::from(2)
}

fn serve(cfg: Config) -> ExitCode {
    anchorgate::telemetry::init_logging(&cfg.log);
    // A panic's message can quote the data being handled (a resource, a header); log where it happened,
    // never what it said. Panics in request handlers become 500 OperationOutcomes (server/stack.rs).
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        tracing::error!(
            location = location.as_deref().unwrap_or("unknown"),
            "panic caught"
        );
    }));
    if let Err(e) = std::fs::create_dir_all(&cfg.data_dir) {
        eprintln!(
            "anchorgate: cannot create data_dir {}: {e}",
            cfg.data_dir.display()
        );
        return ExitCode::from(2);
    }
    // One worker thread is best served by the current-thread scheduler: no work-stealing queues and
    // no cross-thread wake-ups, which measurably lowers per-request CPU (tests/load/RESULTS.md).
    let mut rt = if cfg.worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    rt.enable_all();
    if cfg.worker_threads > 1 {
        rt.worker_threads(cfg.worker_threads);
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("anchorgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let gw = Arc::new(Gateway::new(cfg).map_err(server::ServeError::from)?);
        let served = server::serve(gw.clone(), shutdown_signal()).await;
        // Drained: store the last requests' decisions, then sign what they anchored.
        let grace = gw.config.timeouts.shutdown_grace();
        if let Err(e) = gw.enforcer.recorder.flush(grace).await {
            tracing::error!(error = %e, "the last decision records could NOT be written");
        }
        if let Some(ledger) = &gw.ledger {
            ledger.shutdown();
        }
        served
    });
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot serve");
            eprintln!("anchorgate: {e}");
            // What the operator must fix before the gateway can start (no key, a store that contradicts
            // its checkpoints) is a usage error, like a bad config; a lost port is a runtime failure.
            match e {
                server::ServeError::State(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
