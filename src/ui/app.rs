//! The app loop: one event channel, state changes mark the screen dirty, and only a dirty
//! screen is drawn (inside a synchronized update). Everything slow runs on workers.

use std::collections::BTreeMap;
use std::io::{self, Stdout, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    EventStream,
};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    BeginSynchronizedUpdate, EndSynchronizedUpdate, EnterAlternateScreen, LeaveAlternateScreen,
    disable_raw_mode, enable_raw_mode,
};
use ratatui::layout::Rect;
use ratatui_image::picker::{Picker, ProtocolType};
use time::OffsetDateTime;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::dashscope::Model;
use crate::engine::EngineHandle;
use crate::store::{ImageCache, ImageFiles, StoreError};

use super::data::{DataJob, DataWorker, StoreChange};
use super::draw::{draw, frame_layout};
use super::event::AppEvent;
use super::keys::KeyMap;
use super::preview::ImageWorker;
use super::state::{AppState, BackendLabel, FrameLayout, Header, Prices, Tab, ToastLevel};
use super::stats::{StatsSource, StatsState};
use super::studio::{StudioCommand, StudioWorker};
use super::thumbnails::ThumbnailWorker;
use super::update::{Command, DataSnapshot};

/// How the end of a batch is announced besides the toast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Notify {
    Off,
    /// The terminal bell.
    #[default]
    Bell,
    /// A desktop notification through OSC 9 (iTerm2, kitty, foot, WezTerm...).
    Osc9,
}

/// What the dashboard needs from `main`.
#[derive(Debug, Clone)]
pub struct UiOptions {
    /// The job store (the same file the engine and the CLI use).
    pub store_path: PathBuf,
    /// Shown in the header: LIVE + region, or SIMULATOR.
    pub backend: BackendLabel,
    /// Forces an image protocol; `None` asks the terminal.
    pub protocol: Option<ProtocolType>,
    /// Mouse capture (scrolling); off by default because it steals text selection.
    pub mouse: bool,
    pub notify: Notify,
    /// The key table, with the config's rebindings applied.
    pub keys: KeyMap,
    /// Price per image of each model (the config's `prices`), for the editor's cost line.
    pub prices: BTreeMap<Model, f64>,
    /// Where the `$` view's figures come from.
    pub stats: StatsSource,
    /// The data directory: painted masks go in its `masks/`.
    pub data_dir: PathBuf,
    /// Where images another host saved are kept once read from the store.
    pub image_cache: ImageCache,
}

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("terminal: {0}")]
    Terminal(#[from] io::Error),
    #[error("terminal input: {0}")]
    Input(String),
}

/// Runs the dashboard until the user quits. Call inside a Tokio runtime, with logging
/// going to a file (never stdout). With `engine` (running in this process) the dashboard
/// shows its events and wakes it after each change; without one (a `wandash worker`
/// elsewhere owns it) progress still shows, read from the store.
pub async fn run(options: UiOptions, engine: Option<&EngineHandle>) -> Result<(), UiError> {
    let (events, mut inbox) = unbounded_channel();
    // Open the store before touching the terminal, so a bad path is a plain error.
    // The workers' own way to the images: a store shared by hosts holds those this
    // host's disk lacks.
    let image_files = ImageFiles::for_store(&options.store_path, options.image_cache.clone())?;
    let data = DataWorker::start(&options.store_path, image_files.clone(), events.clone())?;

    let mut terminal = TerminalGuard::enter(options.mouse)?;
    // Ask the terminal about graphics before the input stream starts reading, or the
    // stream would swallow the answers.
    // Inside tmux, halfblocks without asking: tmux answers only part of the query, and
    // the query's reader thread then stays on stdin and eats keystrokes.
    let inside_tmux = std::env::var_os("TMUX").is_some_and(|v| !v.is_empty());
    let protocol = options
        .protocol
        .or(inside_tmux.then_some(ProtocolType::Halfblocks));
    let picker = match protocol {
        // Halfblocks need nothing from the terminal: skip the query (and its wait).
        Some(ProtocolType::Halfblocks) => Picker::halfblocks(),
        forced => {
            let mut picker = Picker::from_query_stdio().unwrap_or_else(|err| {
                tracing::info!(
                    "terminal did not answer the graphics query ({err}); using halfblocks"
                );
                Picker::halfblocks()
            });
            if let Some(protocol) = forced {
                picker.set_protocol_type(protocol);
            }
            picker
        }
    };
    let protocol_name = protocol_label(picker.protocol_type());
    let thumbnails = ThumbnailWorker::start(picker.clone(), image_files.clone(), events.clone());
    let images = ImageWorker::start(picker, image_files.clone(), events.clone());
    let studio = StudioWorker::start(options.data_dir.join("masks"), image_files, events.clone());

    let input_events = events.clone();
    let input = tokio::spawn(async move {
        let mut stream = EventStream::new();
        while let Some(next) = stream.next().await {
            let event = match next {
                Ok(event) => AppEvent::Input(event),
                Err(err) => AppEvent::InputClosed(err.to_string()),
            };
            if input_events.send(event).is_err() {
                return;
            }
        }
        let _ = input_events.send(AppEvent::InputClosed("end of input".into()));
    });

    // SIGTERM, or SIGHUP when the SSH connection drops: leave as `q` does, so the
    // terminal is restored and the engine stops cleanly (jobs stay resumable).
    let signal_events = events.clone();
    let signals = tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut terminate), Ok(mut hangup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        tokio::select! {
            _ = terminate.recv() => {}
            _ = hangup.recv() => {}
        }
        let _ = signal_events.send(AppEvent::Terminate);
    });

    let engine_events = engine.map(|engine| {
        let mut receiver = engine.subscribe();
        let events = events.clone();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match receiver.recv().await {
                    Ok(event) => {
                        if events.send(AppEvent::Engine(event)).is_err() {
                            return;
                        }
                    }
                    // Missed events only cost detail: the store poll catches up.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                }
            }
        })
    });

    let size = terminal.terminal.size()?;
    let header = Header {
        backend: options.backend.clone(),
        protocol: protocol_name,
        ..Header::default()
    };
    let mut state = AppState::new(
        frame_layout(Rect::new(0, 0, size.width, size.height)),
        OffsetDateTime::now_utc(),
        header,
    );
    state.prices = Prices(options.prices);
    state.region = options.stats.region;
    let mut app = App {
        state,
        keys: options.keys,
        data,
        images,
        studio,
        thumbnails,
        engine,
        notify: options.notify,
        progress: Progress::default(),
        stats_source: options.stats,
    };
    let result = app.run(&mut terminal, &mut inbox).await;
    input.abort();
    signals.abort();
    if let Some(task) = engine_events {
        task.abort();
    }
    drop(terminal);
    result
}

struct App<'e> {
    state: AppState,
    keys: KeyMap,
    data: DataWorker,
    images: ImageWorker,
    studio: StudioWorker,
    thumbnails: ThumbnailWorker,
    engine: Option<&'e EngineHandle>,
    notify: Notify,
    progress: Progress,
    stats_source: StatsSource,
}

/// At most this many queued events are taken before a frame is drawn.
const EVENTS_PER_FRAME: usize = 256;
/// Ages in the list move on a timer when nothing else happens.
const IDLE_REDRAW: Duration = Duration::from_secs(15);

impl App<'_> {
    async fn run(
        &mut self,
        terminal: &mut TerminalGuard,
        inbox: &mut UnboundedReceiver<AppEvent>,
    ) -> Result<(), UiError> {
        self.data.send(DataJob::List(self.state.list_request()));
        let mut dirty = true;
        loop {
            self.state.now = OffsetDateTime::now_utc();
            self.state.expire_toasts();
            self.sync_preview();
            self.sync_thumbnails();
            if dirty {
                let commands = terminal.draw(&mut self.state, &self.keys)?;
                dirty = false;
                if self.carry_out(commands) {
                    self.data.send(DataJob::List(self.state.list_request()));
                }
            }
            if self.state.quit {
                return Ok(());
            }
            let timeout = self.next_timer();
            let first = match tokio::time::timeout(timeout, inbox.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(()),
                Err(_) => AppEvent::Tick,
            };
            // Take the whole burst before drawing: a held key or a resize storm costs
            // one frame, and of the resizes only the last size counts.
            let mut batch = vec![first];
            while batch.len() < EVENTS_PER_FRAME {
                match inbox.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
            let last_resize = batch
                .iter()
                .rposition(|e| matches!(e, AppEvent::Input(Event::Resize(..))));
            let mut refresh = false;
            for (i, event) in batch.into_iter().enumerate() {
                if matches!(event, AppEvent::Input(Event::Resize(..))) && Some(i) != last_resize {
                    continue;
                }
                if let AppEvent::Input(Event::Resize(..)) = event {
                    terminal.terminal.autoresize()?;
                }
                let commands = self.handle(event)?;
                refresh |= self.carry_out(commands);
                dirty = true;
            }
            if refresh {
                self.data.send(DataJob::List(self.state.list_request()));
            }
        }
    }

    /// Until the next toast expires, or the idle redraw.
    fn next_timer(&self) -> Duration {
        let now = OffsetDateTime::now_utc();
        self.state
            .toasts
            .iter()
            .map(|t| (t.until - now).try_into().unwrap_or(Duration::ZERO))
            .min()
            .unwrap_or(IDLE_REDRAW)
            .min(IDLE_REDRAW)
            .max(Duration::from_millis(10))
    }

    fn handle(&mut self, event: AppEvent) -> Result<Vec<Command>, UiError> {
        let state = &mut self.state;
        Ok(match event {
            AppEvent::Input(input) => {
                tracing::trace!(?input, "input");
                state.handle(&self.keys, &input)
            }
            AppEvent::InputClosed(reason) => return Err(UiError::Input(reason)),
            AppEvent::Terminate => {
                tracing::info!("a signal asked the dashboard to end");
                state.quit = true;
                Vec::new()
            }
            AppEvent::Data(data) => {
                let now = Instant::now();
                let ended = self.progress.observe(now, &data);
                let commands = state.apply_data(*data);
                state.header.batch.per_minute = self.progress.per_minute(now);
                if let Some(summary) = ended {
                    state.toast(ToastLevel::Info, summary.clone());
                    announce(self.notify, &summary);
                }
                commands
            }
            AppEvent::DataFailed(message) => {
                state.toast(ToastLevel::Error, format!("store: {message}"));
                Vec::new()
            }
            AppEvent::Submitted(result) => {
                if result.is_ok()
                    && let Some(engine) = self.engine
                {
                    engine.wake();
                }
                state.submitted(result)
            }
            AppEvent::ChangeDone(result) => {
                match result {
                    Ok(message) => state.toast(ToastLevel::Info, message),
                    Err(message) => state.toast(ToastLevel::Error, message),
                }
                if let Some(engine) = self.engine {
                    engine.wake();
                }
                Vec::new()
            }
            AppEvent::Engine(event) => state.engine_event(event),
            AppEvent::Stats(figures) => {
                state.stats = match figures {
                    Ok(figures) => StatsState::Ready(figures),
                    Err(message) => StatsState::Failed(message),
                };
                Vec::new()
            }
            AppEvent::Studio(event) => state.studio_event(event),
            AppEvent::Gallery(data) => state.apply_gallery(*data),
            AppEvent::Thumbnail(key, result) => {
                self.thumbnails.finished(key, result);
                Vec::new()
            }
            AppEvent::Image(key, result) => {
                let shown = self.images.finished(key.clone(), result);
                if state.preview.key() == Some(&key) {
                    state.preview = shown;
                }
                Vec::new()
            }
            // Only the clock moved (toasts expire, ages grow): the redraw shows it.
            AppEvent::Tick => Vec::new(),
        })
    }

    /// Carries out the commands; true if the list needs loading again.
    fn carry_out(&mut self, commands: Vec<Command>) -> bool {
        let mut refresh = false;
        for command in commands {
            refresh |= self.command(command);
        }
        refresh
    }

    /// Carries out a command; true if the list needs loading again.
    fn command(&mut self, command: Command) -> bool {
        let change = match command {
            Command::Refresh => return true,
            Command::Copy(text) => {
                copy_to_clipboard(&text);
                self.state.toast(ToastLevel::Info, "copied (OSC 52)");
                return false;
            }
            Command::Cancel(id) => StoreChange::Cancel(id),
            Command::Retry(id) => StoreChange::Retry(id),
            Command::Delete(id) => StoreChange::Delete(id),
            Command::Pause => StoreChange::Pause,
            Command::Resume => StoreChange::Resume,
            Command::MoveInQueue(id, step) => StoreChange::MoveInQueue(id, step),
            Command::MoveToTop(id) => StoreChange::MoveToTop(id),
            Command::WatchStats(on) => {
                let source = on.then(|| self.stats_source.clone());
                self.data.send(DataJob::WatchStats(source));
                return false;
            }
            Command::Submit(spec, parent) => StoreChange::Submit(spec, parent),
            Command::Studio(command) => match command {
                StudioCommand::LoadPicture(path) => {
                    self.studio.decode(path);
                    return false;
                }
                StudioCommand::SaveMask { job, base, mask } => {
                    self.studio.save_mask(job, base, mask);
                    return false;
                }
                StudioCommand::LoadCompare(ids) => {
                    self.data.send(DataJob::Compare(ids));
                    return false;
                }
                StudioCommand::RecordWinner { winner, others } => {
                    StoreChange::RecordWinner { winner, others }
                }
                StudioCommand::Sweep { parent, specs } => StoreChange::Sweep { parent, specs },
            },
            Command::Star {
                job,
                index,
                starred,
            } => StoreChange::Star {
                job,
                index,
                starred,
            },
            Command::LoadGallery(request) => {
                self.data.send(DataJob::Gallery(Some(request)));
                return false;
            }
            Command::CloseGallery => {
                self.data.send(DataJob::Gallery(None));
                return false;
            }
        };
        self.data.send(DataJob::Change(change));
        false
    }

    /// Points the preview at the image the screen wants, from the cache or the worker.
    fn sync_preview(&mut self) {
        if let Some(wanted) = self.state.wanted_image()
            && self.state.preview.key() != Some(&wanted)
        {
            self.state.preview = self.images.lookup(wanted);
        }
    }
}

impl App<'_> {
    /// Gives the gallery the thumbnails it has on screen and has the workers encode the
    /// missing ones (and the next screen's); with no gallery on screen the queue empties.
    fn sync_thumbnails(&mut self) {
        let (screen, ahead) = self.state.thumbnails_wanted();
        let shown = self.thumbnails.want(&screen, &ahead);
        if let Some(gallery) = self.state.gallery.as_mut() {
            gallery.thumbs = shown;
        }
    }
}

/// Throughput of the running batch, and noticing its end.
#[derive(Default)]
struct Progress {
    /// (when, jobs finished so far) over the last two minutes, one reading per change.
    samples: Vec<(Instant, u64)>,
    /// Succeeded and problem counts when the batch started.
    start: Option<(u64, u64)>,
}

/// How far back the rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(120);

impl Progress {
    /// Records a reading taken at `now`; returns the summary when a batch has just ended.
    /// The readings are the whole queue's, whatever the list shows ("mine" included).
    fn observe(&mut self, now: Instant, data: &DataSnapshot) -> Option<String> {
        let remaining = data.remaining();
        let finished = data.queue.get(Tab::All).saturating_sub(remaining);
        self.samples
            .retain(|(at, _)| now.duration_since(*at) < RATE_WINDOW);
        if self.samples.last().is_none_or(|(_, f)| *f != finished) {
            self.samples.push((now, finished));
        }
        let (ok, bad) = (data.queue.get(Tab::Succeeded), data.queue.get(Tab::Failed));
        match (self.start, remaining) {
            (None, r) if r > 0 => {
                self.start = Some((ok, bad));
                None
            }
            (Some((ok0, bad0)), 0) => {
                self.start = None;
                self.samples.clear();
                Some(format!(
                    "batch finished: {} succeeded, {} failed",
                    ok.saturating_sub(ok0),
                    bad.saturating_sub(bad0)
                ))
            }
            _ => None,
        }
    }

    /// Jobs finished per minute from the first reading kept until `now`; `None` until
    /// a job has finished in that time (the header shows `-` then, never `0.0`).
    fn per_minute(&self, now: Instant) -> Option<f64> {
        // Completions are the rises between readings: a retried or deleted job lowers the
        // finished count, and that must not cancel out work that was done.
        let finished: u64 = self
            .samples
            .windows(2)
            .map(|pair| pair[1].1.saturating_sub(pair[0].1))
            .sum();
        let (since, _) = self.samples.first()?;
        let minutes = now.duration_since(*since).as_secs_f64() / 60.0;
        (finished > 0 && minutes > 0.05).then(|| finished as f64 / minutes)
    }
}

/// OSC 52: the terminal (or the one at the other end of SSH) puts the text on its clipboard.
fn copy_to_clipboard(text: &str) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    let mut out = io::stdout();
    let _ = write!(out, "\x1b]52;c;{encoded}\x07");
    let _ = out.flush();
}

fn announce(notify: Notify, summary: &str) {
    let mut out = io::stdout();
    let _ = match notify {
        Notify::Off => return,
        Notify::Bell => write!(out, "\x07"),
        Notify::Osc9 => write!(
            out,
            "\x1b]9;wandash: {}\x07",
            crate::text::sanitize(summary)
        ),
    };
    let _ = out.flush();
}

fn protocol_label(protocol: ProtocolType) -> String {
    match protocol {
        ProtocolType::Halfblocks => "halfblocks",
        ProtocolType::Sixel => "sixel",
        ProtocolType::Kitty => "kitty",
        ProtocolType::Iterm2 => "iterm2",
    }
    .to_string()
}

/// The terminal in dashboard mode; restored on drop and on panic.
struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    mouse: bool,
}

impl TerminalGuard {
    fn enter(mouse: bool) -> io::Result<TerminalGuard> {
        install_panic_hook(mouse);
        enable_raw_mode()?;
        let mut out = io::stdout();
        execute!(out, EnterAlternateScreen, EnableBracketedPaste)?;
        if mouse {
            execute!(out, EnableMouseCapture)?;
        }
        let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        Ok(TerminalGuard { terminal, mouse })
    }

    /// Draws the state and hands it the layout the frame was drawn with; returns what the
    /// state asks for in turn.
    fn draw(&mut self, state: &mut AppState, keys: &KeyMap) -> io::Result<Vec<Command>> {
        // Synchronized updates: the terminal shows the frame whole, never half drawn.
        execute!(self.terminal.backend_mut(), BeginSynchronizedUpdate)?;
        let drawn = self.draw_laid_out(state, keys);
        execute!(self.terminal.backend_mut(), EndSynchronizedUpdate)?;
        drawn
    }

    /// A new layout (the terminal was resized) moves the list's window, so the frame is
    /// drawn again at once, inside the same synchronized update: the terminal never shows
    /// the frame drawn with the old window.
    fn draw_laid_out(&mut self, state: &mut AppState, keys: &KeyMap) -> io::Result<Vec<Command>> {
        let mut layout = FrameLayout::default();
        self.terminal
            .draw(|frame| layout = draw(state, keys, frame))?;
        let commands = state.laid_out(layout);
        if !commands.is_empty() {
            self.terminal.draw(|frame| {
                draw(state, keys, frame);
            })?;
        }
        Ok(commands)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal(self.mouse);
        let _ = self.terminal.show_cursor();
    }
}

fn restore_terminal(mouse: bool) {
    let mut out = io::stdout();
    if mouse {
        let _ = execute!(out, DisableMouseCapture);
    }
    let _ = execute!(out, DisableBracketedPaste, LeaveAlternateScreen);
    let _ = disable_raw_mode();
}

/// A panic restores the terminal before the report is printed, so it is readable and the
/// shell is usable.
fn install_panic_hook(mouse: bool) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal(mouse);
        previous(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::state::TabCounts;
    use crate::ui::update::ListRequest;

    fn data(remaining: u64) -> DataSnapshot {
        DataSnapshot {
            request: ListRequest {
                tab: Tab::All,
                search: String::new(),
                mine: false,
                offset: 0,
                limit: 10,
                selected: 0,
            },
            counts: TabCounts([10, remaining, remaining, 0, 0, 0]),
            images_today: 0,
            spend_today_cny: 0.0,
            pauses: Default::default(),
            queue: TabCounts([10, remaining, remaining, 0, 0, 0]),
            total: 10,
            rows: Vec::new(),
            detail: None,
        }
    }

    #[test]
    fn the_rate_counts_completions_even_when_a_retry_lowers_the_finished_count() {
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let mut progress = Progress::default();
        progress.observe(at(0), &data(5));
        assert_eq!(progress.per_minute(at(0)), None, "nothing measured yet");
        // A job finishes, one is retried (finished drops back), another finishes.
        progress.observe(at(20), &data(4));
        progress.observe(at(30), &data(5));
        progress.observe(at(60), &data(4));
        let rate = progress
            .per_minute(at(60))
            .expect("two jobs finished in a minute");
        assert!((rate - 2.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn the_batch_and_its_end_are_the_whole_queues_whatever_the_tabs_count() {
        let start = Instant::now();
        let mut progress = Progress::default();
        // "Mine" with none of one's own: the tabs count nothing, the queue has 3 left.
        let mine = |queue: [u64; 6]| DataSnapshot {
            counts: TabCounts([0; 6]),
            queue: TabCounts(queue),
            ..data(0)
        };
        assert_eq!(progress.observe(start, &mine([3, 3, 3, 0, 0, 0])), None);
        let ended = progress.observe(start + Duration::from_secs(30), &mine([3, 0, 0, 2, 1, 0]));
        assert_eq!(
            ended.as_deref(),
            Some("batch finished: 2 succeeded, 1 failed")
        );
    }

    #[test]
    fn no_rate_is_claimed_before_a_job_finishes() {
        let start = Instant::now();
        let mut progress = Progress::default();
        progress.observe(start, &data(3));
        progress.observe(start + Duration::from_secs(40), &data(3));
        assert_eq!(progress.per_minute(start + Duration::from_secs(40)), None);
    }
}
