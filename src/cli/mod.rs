//! The headless command line: `wandash submit | batch | worker | list | show | watch |
//! stats | cancel | retry | delete | pause | resume | top | export`. Every command has `--help`;
//! `--json` gives output for scripts.

mod batch;
mod budget;
mod context;
mod daily_log;
mod estimate;
mod export;
mod failure;
mod jobs;
mod mcp;
mod models;
mod progress;
mod queue;
mod run;
mod shell;
mod stats;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::dashscope::{EditFunction, JobSpec, Model, OutputSize, Region};
use crate::intake::{self, Checked};
use crate::store::JobId;

pub use batch::{BatchError, BatchJob, Format, Origin, check_batch, parse_batch, read_batch};
pub use context::Context;
pub use estimate::{Estimate, ModelEstimate, estimate, estimate_repeated};
pub use failure::{CliResult, EXIT_CODES_HELP, ExitKind, Failure};
pub use watch::Progress;

#[derive(Debug, Parser)]
#[command(
    name = "wandash",
    version,
    about = "A terminal dashboard and durable job engine for DashScope's Tongyi Wanxiang image models",
    long_about = "A terminal dashboard and durable job engine for DashScope's Tongyi Wanxiang image models.\n\n\
        Without a subcommand, opens the dashboard. The API key is read from DASHSCOPE_API_KEY only; \
        without a key and without a base URL, the engine runs against its embedded simulator.",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The job database (default: wandash.db in the data directory).
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// The config file (default: ~/.config/wandash/config.toml; absent = defaults).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The service's base URL, e.g. a simulator's http://127.0.0.1:PORT/api/v1.
    #[arg(long, global = true, env = "DASHSCOPE_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,
    /// The DashScope region (its base URL is used unless --base-url is given).
    #[arg(long, global = true, value_name = "REGION", value_parser = ["cn-beijing", "ap-southeast-1", "us-east-1"])]
    pub region: Option<String>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate one job and queue it; prints the job id.
    #[command(after_help = EXIT_CODES_HELP)]
    Submit(SubmitArgs),
    /// Queue every job of a TOML or JSONL batch file (all validated first).
    #[command(after_help = BATCH_HELP)]
    Batch(BatchArgs),
    /// Run the engine headless (for tmux / systemd) until Ctrl-C or SIGTERM.
    #[command(after_help = EXIT_CODES_HELP)]
    Worker {
        /// Stop once nothing is queued or in flight and every image is downloaded.
        #[arg(long)]
        until_idle: bool,
    },
    /// List jobs, newest first (queued jobs alone, `--status queued`: in send order).
    List {
        /// A state (queued, submitting, submitted, running, succeeded, failed, cancelled,
        /// expired, needs_attention) or a group: active, problems.
        #[arg(long, value_name = "STATE")]
        status: Option<String>,
        /// At most this many jobs.
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: u64,
        /// Only the jobs queued as this user on this host (`user@host`, as `show` names
        /// who submitted a job).
        #[arg(long)]
        mine: bool,
    },
    /// Everything about one job: parameters, state history, images, errors.
    Show {
        /// The job's id (as `submit` and `list` print it).
        #[arg(value_parser = parse_job_id)]
        id: JobId,
    },
    /// Progress until the queue drains: done / total, rate, ETA.
    Watch,
    /// Images and spend per model today, this month and in total, and the free images
    /// left (counted locally, from `[budget] free_quota_since` or the store's first job).
    Stats,
    /// The models offered in the region: id, endpoint, sizes, n, price per image, free
    /// images and the limits in force.
    Models,
    /// Cancel a job: a queued one at once; one already at the service (it may be billed)
    /// after a yes, via the service (PENDING only).
    Cancel {
        /// The job's id.
        #[arg(value_parser = parse_job_id)]
        id: JobId,
        /// Cancel a job already at the service without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Delete jobs with their image files (asks at a terminal). A job at the service is
    /// refused: cancel it, then delete it once it has ended.
    Delete {
        /// The jobs' ids.
        #[arg(value_parser = parse_job_id, required = true, value_name = "ID")]
        ids: Vec<JobId>,
        /// Delete without asking (needed when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Pause the queue: no engine on this store sends a new job until `resume`; jobs
    /// already at the service finish and their images are saved.
    Pause {
        /// Pause only this model's jobs.
        #[arg(long, value_parser = parse_model)]
        model: Option<Model>,
    },
    /// Resume the queue (every pause), or one model with --model.
    Resume {
        /// Resume only this model's jobs (the whole queue's pause stays).
        #[arg(long, value_parser = parse_model)]
        model: Option<Model>,
    },
    /// Send a queued job next (before the other queued jobs of its model).
    Top {
        /// The job's id.
        #[arg(value_parser = parse_job_id)]
        id: JobId,
    },
    /// Queue a failed, cancelled, expired or needs-attention job again.
    Retry {
        /// The job's id.
        #[arg(value_parser = parse_job_id)]
        id: JobId,
    },
    /// Copy the images of every succeeded job to DIR, with a JSON sidecar of each job's
    /// parameters (job-<id>.json) so that any image can be reproduced.
    Export {
        /// The folder to copy into (created if missing).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Replace files in DIR that this export did not write (by default it stops).
        #[arg(long)]
        force: bool,
        /// Only the starred images (`*` in the dashboard), of jobs in any state.
        #[arg(long)]
        starred: bool,
    },
    /// Serve the Model Context Protocol on stdio for AI assistants (same store and engine).
    Mcp,
    /// Run the loopback DashScope simulator (for tests and demos).
    Sim(crate::simulator::SimArgs),
    /// Print a shell completion script, e.g. `wandash completions bash > ~/.local/share/bash-completion/completions/wandash`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout, e.g. `wandash man | man -l -`.
    Man,
    /// Print the example config file, every setting with its default and what it does.
    Config {
        /// Print the example config (e.g. `wandash config --example > ~/.config/wandash/config.toml`).
        #[arg(long, required = true)]
        example: bool,
    },
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The model, e.g. wanx2.1-t2i-turbo, wan2.6-t2i, qwen-image-max (`wandash models`).
    #[arg(long, value_parser = parse_model)]
    pub model: Model,
    /// What to draw (a prompt starting with `-` is given as `--prompt=-...`).
    #[arg(long)]
    pub prompt: String,
    /// Negative prompt (the models that take one: `wandash models`).
    #[arg(long = "negative", value_name = "PROMPT")]
    pub negative: Option<String>,
    /// Output size W*H (or WxH), or 1K / 2K / 4K for the models that take them.
    #[arg(long, value_parser = parse_size)]
    pub size: Option<OutputSize>,
    /// Images per task (the model's range: `wandash models`).
    #[arg(short = 'n', long = "n")]
    pub n: Option<u32>,
    /// Random seed, 0 to 2147483647 (same seed and parameters: a similar image).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_seed)]
    pub seed: Option<u64>,
    /// wanx2.1-imageedit's function, e.g. stylization_all, expand, super_resolution.
    #[arg(long, value_parser = parse_function)]
    pub function: Option<EditFunction>,
    /// Base image: a local file or an http(s) URL.
    #[arg(long, value_name = "PATH|URL")]
    pub base_image: Option<String>,
    /// Mask image: a local file or an http(s) URL (white = edit).
    #[arg(long = "mask", value_name = "PATH|URL")]
    pub mask: Option<String>,
    /// Input image of a model that takes a list (wan2.5-i2i, wan2.6/2.7-image, qwen-image
    /// edit and 2.0); repeat for each, in order.
    #[arg(long = "image", value_name = "PATH|URL")]
    pub images: Vec<String>,
    /// wanx-x-painting style, e.g. "<anime>".
    #[arg(long)]
    pub style: Option<String>,
    /// expand's scales TOP,BOTTOM,LEFT,RIGHT, each 1.0-2.0.
    #[arg(long, value_name = "T,B,L,R", value_parser = intake::parse_expand)]
    pub expand: Option<crate::dashscope::ExpandScales>,
    /// super_resolution's factor (1-4).
    #[arg(long = "upscale", value_name = "N")]
    pub upscale: Option<u32>,
    /// wanx-x-painting: a colour that marks the edit area in the mask, R,G,B (repeat for
    /// more); by default the mask is binarised and white is the edit area.
    #[arg(long = "mask-color", value_name = "R,G,B", value_parser = parse_rgb)]
    pub mask_color: Vec<[u8; 3]>,
    /// wan2.6-image: answer with text and images interleaved (0 or 1 input image).
    #[arg(long)]
    pub interleave: bool,
    /// wan2.6-image with --interleave: at most this many images (1-5).
    #[arg(long, value_name = "N")]
    pub max_images: Option<u32>,
    /// wan2.7-image: a sequence of images (n up to 12).
    #[arg(long)]
    pub sequential: bool,
    /// wan2.7-image: thinking mode on or off (default on; text-to-image only).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    pub thinking: Option<bool>,
    /// wan2.7-image: the image's colours, 3-10 HEX:RATIO pairs, ratios 0-1, e.g.
    /// '#112233:0.5,#445566:0.3,#778899:0.2'.
    #[arg(long, value_name = "HEX:RATIO,...", value_parser = crate::dashscope::composition::parse_palette)]
    pub color_palette: Option<::std::vec::Vec<crate::dashscope::composition::PaletteColor>>,
    /// wan2.7-image: boxes per input image as JSON, e.g. '[[[0,0,512,512]]]' (one list of
    /// [x1, y1, x2, y2] boxes per --image).
    #[arg(long, value_name = "JSON", value_parser = crate::dashscope::composition::parse_bbox_list)]
    pub bbox_list:
        Option<::std::vec::Vec<::std::vec::Vec<crate::dashscope::composition::BoundingBox>>>,
    /// Do not let the service rewrite the prompt.
    #[arg(long, conflicts_with = "prompt_extend")]
    pub no_prompt_extend: bool,
    /// Let the service rewrite the prompt where it is off by default (z-image-turbo, at
    /// twice the price).
    #[arg(long)]
    pub prompt_extend: bool,
    /// Ask the service to put its "AI generated" mark on the images.
    #[arg(long)]
    pub watermark: bool,
    /// Run the engine until this job ends and print its image paths.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// A .toml file of [[job]] tables, or a .jsonl file with one job per line.
    pub file: PathBuf,
    /// Only print the job and image count, the cost and the time estimate.
    #[arg(long)]
    pub dry_run: bool,
    /// Run the engine until every job of the batch ends.
    #[arg(long, conflicts_with = "dry_run")]
    pub wait: bool,
    /// Queue a batch that expands to more jobs than `[batch] max_jobs` without asking.
    #[arg(long)]
    pub yes: bool,
}

const BATCH_HELP: &str = "Batch files:
  TOML:  [[job]] tables, each with the fields of one job (model, prompt, size, n, seed, ...).
  JSONL: one JSON object per line with the same fields.
  Matrix: `prompts = [...]`, `seeds = [...]`, `sizes = [...]` instead of prompt/seed/size
  expand to every combination (prompts x seeds x sizes).
  Relative image paths are read relative to the batch file.

Exit codes:
  0  success
  1  generic failure (I/O, unexpected answer)
  2  usage or validation error (the message names the field and the limit)
  3  engine or backend error (bad API key, arrears, store locked or unreadable,
     data directory not writable)
  4  with --wait: a job ended failed, cancelled, expired or needing attention";

fn parse_job_id(s: &str) -> Result<JobId, String> {
    s.parse()
}

/// Any whole number, so that a negative one meets the seed's rule rather than clap's
/// "unexpected argument"; the range itself is the validation's
/// (`crate::dashscope::validate::MAX_SEED`).
fn parse_seed(s: &str) -> Result<u64, String> {
    let out_of_range = || {
        format!(
            "{s} is out of range; seed must be 0 to {}",
            crate::dashscope::validate::MAX_SEED
        )
    };
    match s.parse::<i128>() {
        Ok(n) if n < 0 => Err(out_of_range()),
        Ok(n) => u64::try_from(n).map_err(|_| out_of_range()),
        Err(_) => Err(format!(
            "`{s}` is not a whole number; seed must be 0 to {}",
            crate::dashscope::validate::MAX_SEED
        )),
    }
}

fn parse_model(s: &str) -> Result<Model, String> {
    s.parse()
        .map_err(|e: crate::dashscope::UnknownModel| e.to_string())
}

fn parse_size(s: &str) -> Result<OutputSize, String> {
    s.parse()
        .map_err(|e: crate::dashscope::BadSize| e.to_string())
}

/// `255,0,0`: one colour of wanx-x-painting's `mask_color`.
fn parse_rgb(s: &str) -> Result<[u8; 3], String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let channels: Option<Vec<u8>> = parts.iter().map(|p| p.parse().ok()).collect();
    match channels.as_deref() {
        Some(&[r, g, b]) => Ok([r, g, b]),
        _ => Err(format!(
            "`{s}` is not a colour; write R,G,B with each 0 to 255, e.g. 255,0,0"
        )),
    }
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(format!("`{s}` is not on or off")),
    }
}

fn parse_function(s: &str) -> Result<EditFunction, String> {
    s.parse()
        .map_err(|e: crate::dashscope::UnknownFunction| e.to_string())
}

/// The command line's definition as `main` parses it, and as completions and the manual
/// page describe it.
pub fn command() -> clap::Command {
    Cli::command().mut_subcommand("sim", shell::without_global_options_in_help)
}

/// Parses the command line and runs it; the process exit code.
pub fn main() -> ExitCode {
    failure::end_quietly_on_closed_pipe();
    // Before parsing, so that a usage error is JSON too when `--json` was asked for.
    let json = std::env::args_os().skip(1).any(|arg| arg == "--json");
    let cli = match command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(error) => return failure::usage_error(error, json),
    };
    match run(cli) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("error: {failure}");
            if json {
                println!("{}", failure.to_json());
            }
            failure.exit_code()
        }
    }
}

fn run(cli: Cli) -> CliResult<ExitCode> {
    // The simulator stands apart: no config, store or data directory of its own.
    match cli.command {
        Some(Command::Sim(args)) => return run_simulator(args),
        Some(Command::Completions { shell }) => return shell::completions(shell).map(ok),
        Some(Command::Man) => return shell::man().map(ok),
        Some(Command::Config { .. }) => return shell::example_config().map(ok),
        _ => {}
    }
    let region = cli
        .global
        .region
        .as_deref()
        .map(|r| r.parse::<Region>().map_err(Failure::usage))
        .transpose()?;
    let ctx = Context::new(&cli.global, region)?;
    let _log_guard = ctx.init_logging();
    match cli.command {
        None => run::dashboard(&ctx),
        Some(Command::Submit(args)) => submit_command(&ctx, &args),
        Some(Command::Batch(args)) => batch_command(&ctx, &args),
        Some(Command::Worker { until_idle }) => run::worker(&ctx, until_idle),
        Some(Command::List {
            status,
            limit,
            mine,
        }) => jobs::list(&ctx, status.as_deref(), limit, mine).map(ok),
        Some(Command::Show { id }) => jobs::show(&ctx, id).map(ok),
        Some(Command::Watch) => watch::watch(&ctx).map(ok),
        Some(Command::Stats) => stats::stats(&ctx).map(ok),
        Some(Command::Cancel { id, yes }) => jobs::cancel(&ctx, id, yes).map(ok),
        Some(Command::Delete { ids, yes }) => queue::delete(&ctx, &ids, yes).map(ok),
        Some(Command::Pause { model }) => queue::pause(&ctx, model).map(ok),
        Some(Command::Resume { model }) => queue::resume(&ctx, model).map(ok),
        Some(Command::Top { id }) => queue::top(&ctx, id).map(ok),
        Some(Command::Models) => models::models(&ctx).map(ok),
        Some(Command::Retry { id }) => jobs::retry(&ctx, id).map(ok),
        Some(Command::Export { to, force, starred }) => {
            export::export(&ctx, &to, force, starred).map(ok)
        }
        Some(Command::Mcp) => mcp::command(&ctx),
        Some(
            Command::Sim(_) | Command::Completions { .. } | Command::Man | Command::Config { .. },
        ) => unreachable!("handled before the context is built"),
    }
}

fn run_simulator(args: crate::simulator::SimArgs) -> CliResult<ExitCode> {
    run::runtime()?
        .block_on(crate::simulator::run_cli(args))
        .map_err(|e| Failure::other(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}

fn ok(_: ()) -> ExitCode {
    ExitCode::SUCCESS
}

fn submit_command(ctx: &Context, args: &SubmitArgs) -> CliResult<ExitCode> {
    let id = jobs::submit(ctx, args)?;
    let store = jobs::open_store(ctx)?;
    budget::say(budget::note(ctx, &store, &budget::queue(&store)?, 1)?);
    drop(store);
    if args.wait {
        eprintln!("job {id} queued; running it");
        return run::wait_for(ctx, &[id]);
    }
    jobs::print_queued(ctx, &[id]);
    Ok(ExitCode::SUCCESS)
}

fn batch_command(ctx: &Context, args: &BatchArgs) -> CliResult<ExitCode> {
    let file = read_batch(&args.file).map_err(report_batch_errors)?;
    let count = file.job_count();
    let max_jobs = ctx.config.batch.max_jobs;
    if count > max_jobs {
        // Priced from one job per table: building a million jobs to count them is what
        // this limit is there to prevent.
        let samples = file.samples().map_err(report_batch_errors)?;
        let specs: Vec<(&JobSpec, u64)> = samples.iter().map(|(job, n)| (job.spec(), *n)).collect();
        let est = estimate_repeated(&specs, &ctx.config);
        if args.dry_run {
            print_estimate(ctx, &est);
            return Ok(ExitCode::SUCCESS);
        }
        let question = format!(
            "the batch expands to {count} jobs, over the limit of {max_jobs} ([batch] max_jobs in the config); estimated cost {:.2} CNY{}",
            est.cost_cny,
            if est.cost_complete { "" } else { " or more" }
        );
        if !args.yes && !confirm_on_terminal(ctx, &question) {
            return Err(Failure::usage(format!(
                "{question}. Nothing was queued: pass --yes to queue them all, or split the batch"
            )));
        }
    }
    let jobs = file
        .expand()
        .map(|jobs| jobs.into_iter().map(|j| j.for_region(ctx.region)).collect())
        .and_then(check_batch)
        .map_err(report_batch_errors)?;
    if args.dry_run {
        let specs: Vec<&JobSpec> = jobs.iter().map(Checked::spec).collect();
        print_estimate(ctx, &estimate(&specs, &ctx.config));
        let store = jobs::open_store(ctx)?;
        let mut queue = budget::queue(&store)?;
        queue.extend(
            specs
                .iter()
                .map(|spec| (spec.model, u64::from(spec.image_count()))),
        );
        budget::say(budget::note(ctx, &store, &queue, specs.len())?);
        return Ok(ExitCode::SUCCESS);
    }
    let tag = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let store = jobs::open_store(ctx)?;
    let ids = intake::enqueue_all(&store, jobs, tag.as_deref()).map_err(jobs::store_failure)?;
    budget::say(budget::note(
        ctx,
        &store,
        &budget::queue(&store)?,
        ids.len(),
    )?);
    drop(store);
    if args.wait {
        eprintln!("{} job(s) queued; running them", ids.len());
        return run::wait_for(ctx, &ids);
    }
    jobs::print_queued(ctx, &ids);
    Ok(ExitCode::SUCCESS)
}

fn print_estimate(ctx: &Context, est: &Estimate) {
    if ctx.json {
        println!(
            "{}",
            serde_json::to_string_pretty(est).expect("an estimate serialises")
        );
    } else {
        print!("{}", est.render());
    }
}

/// Asks whether to queue an oversized batch (see `ask_on_terminal`).
fn confirm_on_terminal(ctx: &Context, question: &str) -> bool {
    ask_on_terminal(ctx, &format!("{question}. Queue them all?"))
}

/// Asks a yes/no question when a person is at the terminal (stdin and stderr both one, and
/// no `--json`); anywhere else the answer is no, so a script never hangs on a question.
fn ask_on_terminal(ctx: &Context, question: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Read, Write};
    if ctx.json || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return false;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    // One short line is all a yes needs; a longer one is not a yes.
    let read = std::io::stdin().lock().take(16).read_line(&mut answer);
    read.is_ok() && matches!(answer.trim(), "y" | "Y" | "yes" | "Yes")
}

/// Prints every batch error (up to a screenful) and sums them up in the failure.
fn report_batch_errors(errors: Vec<BatchError>) -> Failure {
    const SHOWN: usize = 20;
    for e in errors.iter().take(SHOWN) {
        eprintln!("error: {}", crate::text::sanitize(&e.to_string()));
    }
    if errors.len() > SHOWN {
        eprintln!("error: ... and {} more", errors.len() - SHOWN);
    }
    Failure::usage(format!(
        "{} problem(s) in the batch file; nothing was queued. Fix them and run the command again",
        errors.len()
    ))
}
