//! The longer help texts: the top level's purposes, path rule and exit codes, and each subcommand's
//! examples. Kept apart so `main.rs` shows the command tree at a glance. Lines stay under 80
//! columns: clap re-wraps longer ones at the terminal's width, which breaks examples apart.

/// After the top-level help.
pub(crate) const TOP: &str = "\
Subcommands by purpose:
  try it out             demo (a test EHR, a gateway and commands to paste)
  run the gateway        serve, check-config
  keys and test tokens   keygen, token (tokens for development and tests only)
  offline checks         validate, ledger verify
  operate on its data    ledger erase, consent import, audit export

Settings: a TOML file (--config or ANCHORGATE_CONFIG; anchorgate.example.toml
documents every setting), then ANCHORGATE_* environment variables, then flags;
later wins. A relative path in the config file is relative to the file's
directory (so is the default data_dir, anchorgate-data); without a config
file, and in flags and environment variables, it is relative to the working
directory. `anchorgate check-config` prints the result, every path resolved.

Logs go to stderr (pretty on a terminal, JSON lines otherwise; ANCHORGATE_LOG
sets the level); stdout carries only a command's output.

Exit codes:
  0  success
  1  runtime failure: the command ran and failed (port in use, upstream
     unreachable, I/O error), or what it checked failed (an invalid resource,
     a log that does not verify)
  2  usage or configuration error: bad flags or settings, a missing file or
     key, nothing matching what was named (ledger erase of an unknown id)";

/// After `serve --help`.
pub(crate) const SERVE: &str = "\
Needs:
  A ledger signing key: --ledger-key-file FILE, made once with
      anchorgate keygen --origin fhir.example.org/ledger --out ledger.key
    (it prints the verifier key to publish); or the key itself in
    ANCHORGATE_LEDGER_KEY; or --ephemeral-ledger-key to try the gateway out.
  A token issuer: [[identity.issuers]] in the config file (issuer, and
    jwks_file or jwks_url); without one every FHIR request but metadata
    answers 401. A test issuer, for development only:
      anchorgate keygen --kind issuer --out issuer.pem \\
        --jwks-out issuer.jwks.json
    then mint tokens with `anchorgate token --issuer-key issuer.pem ...`.
  Start-up warns, one log line each, when there is no issuer and when the
  upstream does not answer GET [upstream]/metadata.

Examples:
  anchorgate serve --ephemeral-ledger-key \\
    --upstream http://127.0.0.1:8090/fhir
  anchorgate serve --config anchorgate.example.toml --ephemeral-ledger-key
  anchorgate serve --config /etc/anchorgate/anchorgate.toml \\
    --ledger-key-file /etc/anchorgate/ledger.key";

/// After `check-config --help`.
pub(crate) const CHECK_CONFIG: &str = "\
Output: the effective configuration as TOML on stdout (file, then environment,
then flags; every relative path made absolute), which --config reads back to
the same settings, then one `# warning: ...` comment line per warning.
Exits 0 when valid, warnings or not; 2 when not, with the error on stderr.

Examples:
  anchorgate check-config --config anchorgate.example.toml
  ANCHORGATE_UPSTREAM=https://ehr.internal/fhir \\
    anchorgate check-config -c /etc/anchorgate/anchorgate.toml";

/// After `validate --help`.
pub(crate) const VALIDATE: &str = "\
Examples:
  anchorgate validate patient.json observation.xml
  anchorgate validate --profile \\
    http://hl7.org/fhir/uv/ips/StructureDefinition/Patient-uv-ips patient.json
  anchorgate validate --load ./my-profiles/ --strict patient.json";

/// After `keygen --help`.
pub(crate) const KEYGEN: &str = "\
Examples:
  anchorgate keygen --origin fhir.example.org/ledger --out ledger.key \\
    > ledger.verifier
  anchorgate keygen --kind issuer --alg ES256 --out issuer.pem \\
    --jwks-out issuer.jwks.json";

/// After `token --help`.
pub(crate) const TOKEN: &str = "\
Example:
  anchorgate token --issuer-key issuer.pem --ttl 300 --claims '{
    \"iss\": \"https://idp.test\", \"aud\": \"http://127.0.0.1:8080/fhir\",
    \"sub\": \"demo\", \"scope\": \"system/*.cruds\",
    \"extensions\": {\"hl7-b2b\": {\"organization_id\": \"Organization/org-h1\",
                                 \"purpose_of_use\": [\"TREAT\"]}}}'";

/// After `ledger verify --help`.
pub(crate) const LEDGER_VERIFY: &str = "\
Examples:
  anchorgate ledger verify --url https://gw.example.org/ledger \\
    --key \"$(cat ledger.verifier)\" --state last-verified.checkpoint
  anchorgate ledger verify --dir anchorgate-data/ledger/log \\
    --key \"$(cat ledger.verifier)\"";

/// After `ledger erase --help`.
pub(crate) const LEDGER_ERASE: &str = "\
Exit codes: 0 erased; 2 when the resource has no entry left to erase (nothing
is appended), the ledger is in use (stop the gateway first), or the
configuration or key is wrong; 1 when the store fails midway.

Examples:
  anchorgate ledger erase --type Patient --id pat-123 \\
    --config /etc/anchorgate/anchorgate.toml \\
    --ledger-key-file /etc/anchorgate/ledger.key
  anchorgate ledger erase --type Observation --id obs-9 \\
    --data-dir ./anchorgate-data --ledger-key-file ledger.key";

/// After `consent import --help`.
pub(crate) const CONSENT_IMPORT: &str = "\
Exit codes: 0 imported; 1 when the upstream fails or answers badly midway;
2 when the configuration, the key or the ledger cannot be used (in use by a
running gateway: stop it first).

Examples:
  anchorgate consent import --config /etc/anchorgate/anchorgate.toml \\
    --ledger-key-file /etc/anchorgate/ledger.key
  anchorgate consent import --upstream http://127.0.0.1:8090/fhir \\
    --data-dir ./anchorgate-data --ledger-key-file ledger.key";

/// After `audit export --help`.
pub(crate) const AUDIT_EXPORT: &str = "\
Exit codes: 0 exported; 1 when reading the store or writing stdout fails
midway; 2 on a bad filter, a bad configuration, or no store in the data
directory.

Examples:
  anchorgate audit export --config /etc/anchorgate/anchorgate.toml \\
    > decisions.ndjson
  anchorgate audit export --data-dir ./anchorgate-data --format csv \\
    --filter patient=pat-123 --filter from=2025-01-01 > pat-123.csv";
