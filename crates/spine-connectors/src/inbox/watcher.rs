//! The watcher loop: file-system events and periodic full rescans feed each folder's
//! [`Tracker`]; stable files are taken in batches (up to [`BATCH_FILES`] files of one folder,
//! whose registrations share their durability; decision 0027) by at most
//! [`DEFAULT_CONCURRENCY`] tasks at once.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::event::{ModifyKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use spine_pipeline::Shutdown;
use spine_pipeline::register::Registrar;
use spine_store::Store;
use spine_store::repos::inbox::InboxEntry;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::batch::{self, BATCH_FILES};
use super::error::InboxError;
use super::folder::ResolvedFolder;
use super::ignore::is_excluded;
use super::scan::{self, Observation, Seen};
use super::stability::{Ready, Tracker};
use super::state::{self, FolderState};
use super::stats::InboxStats;
use super::take::{self, CrashPoint, Env, FolderCtx, Taken};

/// Batches in flight at once (each holds one open file at a time).
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Events buffered between the notify thread and the loop; when full, the notify thread waits
/// (and the kernel queues, or reports an overflow, which triggers a rescan).
const EVENT_BUFFER: usize = 8192;
/// How long shutdown waits for registrations in flight before abandoning them (an abandoned one
/// is resolved at the next start).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Watches folders and registers what arrives in them. See the module documentation.
pub struct InboxWatcher {
    env: Arc<Env>,
    folders: Vec<Arc<FolderCtx>>,
    concurrency: usize,
}

impl InboxWatcher {
    /// A watcher for `folders` (from [`super::resolve`]); captures name `watcher:<hostname>`.
    pub fn new(registrar: Registrar, store: Store, folders: Vec<ResolvedFolder>, hostname: &str) -> Self {
        let captured_by = format!("watcher:{hostname}");
        let folders = folders.into_iter().map(|f| Arc::new(FolderCtx::new(f, &captured_by))).collect();
        let env = Env { registrar, store, stats: InboxStats::default(), captured_by };
        Self { env: Arc::new(env), folders, concurrency: DEFAULT_CONCURRENCY }
    }

    /// Batches in flight at once (at least 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The counters, shared: keep the handle to read them while [`Self::run`] runs.
    pub fn stats(&self) -> InboxStats {
        self.env.stats.clone()
    }

    pub fn folders(&self) -> impl Iterator<Item = &ResolvedFolder> {
        self.folders.iter().map(|c| &c.folder)
    }

    /// Watches until `shutdown`. Fails only when it cannot start (state unreadable, no event
    /// source); errors on single files are retried or end in `failed/`.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), InboxError> {
        if self.folders.is_empty() {
            tracing::info!("inbox watcher has no folders to watch.");
            return Ok(());
        }
        let (tx, mut events) = mpsc::channel::<notify::Result<Event>>(EVENT_BUFFER);
        let mut fs = notify::recommended_watcher(move |res| {
            let _ = tx.blocking_send(res);
        })?;
        let mut runs = Vec::with_capacity(self.folders.len());
        for ctx in &self.folders {
            let state = state::load(&self.env.store, &ctx.folder).await?;
            let mut run = FolderRun::new(ctx.clone(), state);
            run.watch(&mut fs, PathBuf::new());
            tracing::info!(folder = %ctx.key, tenant = %ctx.folder.tenant_slug, read_only = ctx.folder.read_only,
                unfinished = run.state.unfinished.len(), "inbox folder watched.");
            runs.push(run);
        }
        let mut lp = Loop { watcher: &self, fs, runs, tasks: JoinSet::new(), ids: HashMap::new(), next_folder: 0 };
        let mut tick = tokio::time::interval(tick_interval(&self.folders));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait() => break,
                Some(done) = lp.tasks.join_next_with_id(), if !lp.tasks.is_empty() => {
                    lp.finished(done);
                    lp.fill();
                }
                Some(ev) = events.recv() => {
                    let mut urgent = lp.on_event(ev);
                    while let Ok(ev) = events.try_recv() {
                        urgent |= lp.on_event(ev);
                    }
                    if urgent {
                        lp.refresh(false).await;
                        lp.fill();
                    }
                }
                _ = tick.tick() => {
                    lp.refresh(true).await;
                    lp.fill();
                }
            }
            lp.publish();
        }
        lp.drain().await;
        Ok(())
    }

    /// Test hook for the restart protocol: takes one file as the loop would, but stops at
    /// `crash` as if the process died there.
    #[doc(hidden)]
    pub async fn take_until(&self, folder: usize, rel: &Path, crash: CrashPoint) -> Result<(), InboxError> {
        let ctx = self.folders.get(folder).ok_or_else(|| InboxError::Config(format!("no folder {folder}")))?;
        let path = ctx.folder.path.join(rel);
        let m = tokio::fs::symlink_metadata(&path).await.map_err(|source| InboxError::Folder { path, source })?;
        let state = state::load(&self.env.store, &ctx.folder).await?;
        let r = Ready { rel: rel.to_owned(), seen: Seen::of(&m), attempts: 0 };
        let prior = state.unfinished.get(rel).cloned();
        match batch::take_batch(&self.env, ctx, vec![(r, prior)], Some(crash)).await.pop().map(|(_, t)| t) {
            Some(Taken::Stopped) => Ok(()),
            other => {
                Err(InboxError::File { path: rel.to_owned(), message: format!("did not reach {crash:?}: {other:?}") })
            }
        }
    }
}

fn tick_interval(folders: &[Arc<FolderCtx>]) -> Duration {
    let settle = folders.iter().map(|c| c.folder.settle).min().unwrap_or(Duration::from_secs(2));
    (settle / 4).clamp(Duration::from_millis(20), Duration::from_millis(500))
}

/// One folder's live state in the loop.
struct FolderRun {
    ctx: Arc<FolderCtx>,
    tracker: Tracker,
    state: FolderState,
    /// Relative paths an event named, to look at on the next refresh.
    dirty: HashSet<PathBuf>,
    /// Paths a rename moved in (taken without waiting to settle).
    moved_in: HashSet<PathBuf>,
    ignored: HashSet<PathBuf>,
    /// Folders with a watch (relative; the root is `""`).
    watched: HashSet<PathBuf>,
    next_rescan: Instant,
    /// The first full rescan is done.
    scanned: bool,
}

impl FolderRun {
    fn new(ctx: Arc<FolderCtx>, state: FolderState) -> Self {
        Self {
            tracker: Tracker::new(ctx.folder.settle),
            ctx,
            state,
            dirty: HashSet::new(),
            moved_in: HashSet::new(),
            ignored: HashSet::new(),
            watched: HashSet::new(),
            next_rescan: Instant::now(),
            scanned: false,
        }
    }

    /// Adds a watch on folder `rel`; a new subfolder is looked at again afterwards, for files
    /// that arrived before its watch did.
    fn watch(&mut self, fs: &mut RecommendedWatcher, rel: PathBuf) {
        if self.watched.contains(&rel) || !(rel.as_os_str().is_empty() || self.ctx.folder.recursive) {
            return;
        }
        match fs.watch(&self.ctx.folder.path.join(&rel), RecursiveMode::NonRecursive) {
            Ok(()) => {
                if !rel.as_os_str().is_empty() {
                    self.dirty.insert(rel.clone());
                }
                self.watched.insert(rel);
            }
            Err(e) => tracing::warn!(folder = %self.ctx.key, dir = %rel.to_string_lossy(), error = %e,
                "inbox folder cannot be watched; rescans still find its files."),
        }
    }

    fn unwatch(&mut self, fs: &mut RecommendedWatcher, rel: &Path) {
        if self.watched.remove(rel) {
            let _ = fs.unwatch(&self.ctx.folder.path.join(rel));
        }
    }

    /// Applies what a look found. After the first full rescan, returns the unfinished entries
    /// whose file is not in the folder any more (to be resolved).
    fn apply(
        &mut self,
        fs: &mut RecommendedWatcher,
        stats: &InboxStats,
        obs: Vec<Observation>,
        full: bool,
    ) -> Vec<InboxEntry> {
        let now = Instant::now();
        let mut files = HashSet::new();
        let mut dirs = HashSet::new();
        let mut ignored = HashSet::new();
        let mut complete = true;
        // What went away first: a folder renamed within the folder is unwatched under its old
        // name before its new name is watched (inotify gives both the same watch).
        let (gone, rest): (Vec<_>, Vec<_>) = obs.into_iter().partition(|o| matches!(o, Observation::Gone { .. }));
        for o in gone.into_iter().chain(rest) {
            match o {
                Observation::File { rel, seen } => {
                    let moved = self.moved_in.remove(&rel);
                    let known = self.state.known.get(&rel) == Some(&seen.key());
                    if known && !self.state.unfinished.contains_key(&rel) {
                        self.tracker.forget(&rel);
                    } else {
                        self.tracker.observe(rel.clone(), seen, now, moved);
                    }
                    if full {
                        files.insert(rel);
                    }
                }
                Observation::Ignored { rel } => {
                    self.tracker.forget(&rel);
                    if full {
                        ignored.insert(rel.clone());
                    }
                    if self.ignored.insert(rel) {
                        stats.ignored();
                    }
                }
                Observation::Gone { rel } => {
                    self.tracker.forget(&rel);
                    self.ignored.remove(&rel);
                    self.moved_in.remove(&rel);
                    if self.watched.contains(&rel) {
                        self.unwatch(fs, &rel);
                        self.tracker.forget_below(&rel);
                        self.ignored.retain(|p| !p.starts_with(&rel));
                    }
                }
                Observation::Dir { rel } => {
                    if full {
                        dirs.insert(rel.clone());
                    }
                    self.watch(fs, rel);
                }
                Observation::Unreadable { rel, error } => {
                    complete = false;
                    tracing::warn!(folder = %self.ctx.key, path = %rel.to_string_lossy(), error = %error,
                        "inbox path cannot be looked at.");
                }
            }
        }
        if full {
            self.tracker.retain(|p| files.contains(p));
            self.moved_in.retain(|p| files.contains(p));
            self.ignored.retain(|p| ignored.contains(p));
            let stale: Vec<PathBuf> = self.watched.iter().filter(|d| !dirs.contains(*d)).cloned().collect();
            for d in stale {
                self.unwatch(fs, &d);
            }
            // Only a walk that saw everything may say a file is gone.
            if !self.scanned && complete && dirs.contains(Path::new("")) {
                self.scanned = true;
                let gone: Vec<PathBuf> =
                    self.state.unfinished.keys().filter(|p| !files.contains(*p)).cloned().collect();
                return gone.iter().filter_map(|p| self.state.unfinished.remove(p)).collect();
            }
        }
        Vec::new()
    }
}

/// What a batch task returns: its folder and how each file's take ended.
type BatchOut = (usize, Vec<(Ready, Taken)>);

/// The loop's working state.
struct Loop<'a> {
    watcher: &'a InboxWatcher,
    fs: RecommendedWatcher,
    runs: Vec<FolderRun>,
    tasks: JoinSet<BatchOut>,
    /// Each batch's folder and files.
    ids: HashMap<tokio::task::Id, (usize, Vec<PathBuf>)>,
    next_folder: usize,
}

impl Loop<'_> {
    /// Notes what an event names; true when a file was moved in (worth looking at now).
    fn on_event(&mut self, res: notify::Result<Event>) -> bool {
        let ev = match res {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "inbox file system events failed; rescanning.");
                self.rescan_all();
                return false;
            }
        };
        if ev.need_rescan() {
            tracing::info!("inbox file system events were lost; rescanning.");
            self.rescan_all();
        }
        let moved_to = match ev.kind {
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => ev.paths.first(),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => ev.paths.get(1),
            _ => None,
        };
        let mut urgent = false;
        for p in &ev.paths {
            let Some((i, rel)) = self.locate(p) else { continue };
            if is_excluded(&rel) {
                continue;
            }
            if moved_to == Some(p) {
                self.runs[i].moved_in.insert(rel.clone());
                urgent = true;
            }
            self.runs[i].dirty.insert(rel);
        }
        urgent
    }

    fn locate(&self, path: &Path) -> Option<(usize, PathBuf)> {
        self.runs
            .iter()
            .enumerate()
            .find_map(|(i, r)| path.strip_prefix(&r.ctx.folder.path).ok().map(|rel| (i, rel.to_owned())))
    }

    fn rescan_all(&mut self) {
        let now = Instant::now();
        for r in &mut self.runs {
            r.next_rescan = now;
        }
    }

    /// Looks at what events named and, when due (and `rescans` allows), walks whole folders.
    async fn refresh(&mut self, rescans: bool) {
        let stats = self.watcher.env.stats.clone();
        for run in &mut self.runs {
            let full = rescans && Instant::now() >= run.next_rescan;
            let rels: Vec<PathBuf> = if full {
                run.dirty.clear();
                vec![PathBuf::new()]
            } else {
                run.dirty.drain().collect()
            };
            if rels.is_empty() {
                continue;
            }
            let (root, rules, recursive) =
                (run.ctx.folder.path.clone(), run.ctx.folder.ignore.clone(), run.ctx.folder.recursive);
            let obs = match tokio::task::spawn_blocking(move || scan::observe(&root, &rels, &rules, recursive)).await {
                Ok(obs) => obs,
                Err(e) => {
                    tracing::error!(folder = %run.ctx.key, error = %e, "inbox scan panicked.");
                    continue;
                }
            };
            let gone = run.apply(&mut self.fs, &stats, obs, full);
            for entry in gone {
                if let Err(error) =
                    take::resolve_unfinished(&self.watcher.env, &run.ctx, &entry, "the file left the folder").await
                {
                    tracing::warn!(folder = %run.ctx.key, file = %entry.relative_path, error = %error,
                        "inbox entry of a file that left the folder could not be resolved; the next start tries again.");
                }
            }
            if full {
                run.next_rescan = Instant::now() + run.ctx.folder.rescan;
                stats.rescanned();
            }
        }
    }

    /// Starts batches of stable files while there is room, folders in turn.
    fn fill(&mut self) {
        let n = self.runs.len();
        let (now, wall) = (Instant::now(), scan::now_ns());
        for k in 0..n {
            let i = (self.next_folder + k) % n;
            while self.tasks.len() < self.watcher.concurrency {
                let run = &mut self.runs[i];
                let ready = run.tracker.take_ready(now, wall, BATCH_FILES);
                if ready.is_empty() {
                    break;
                }
                let rels: Vec<PathBuf> = ready.iter().map(|r| r.rel.clone()).collect();
                let files: Vec<(Ready, Option<InboxEntry>)> = ready
                    .into_iter()
                    .map(|r| {
                        let prior = run.state.unfinished.get(&r.rel).cloned();
                        (r, prior)
                    })
                    .collect();
                let (env, ctx) = (self.watcher.env.clone(), run.ctx.clone());
                let handle = self.tasks.spawn(async move { (i, batch::take_batch(&env, &ctx, files, None).await) });
                self.ids.insert(handle.id(), (i, rels));
            }
        }
        self.next_folder = (self.next_folder + 1) % n;
    }

    fn finished(&mut self, done: Result<(tokio::task::Id, BatchOut), tokio::task::JoinError>) {
        let now = Instant::now();
        let (i, taken) = match done {
            Ok((id, out)) => {
                self.ids.remove(&id);
                out
            }
            Err(e) => {
                let Some((i, rels)) = self.ids.remove(&e.id()) else { return };
                let run = &mut self.runs[i];
                for rel in rels {
                    tracing::error!(folder = %run.ctx.key, file = %rel.to_string_lossy(), error = %e,
                        "inbox take panicked; trying again later.");
                    run.tracker.retry_later(&rel, now, run.ctx.folder.rescan);
                }
                return;
            }
        };
        for (r, t) in taken {
            self.finished_file(i, r, t, now);
        }
    }

    fn finished_file(&mut self, i: usize, r: Ready, taken: Taken, now: Instant) {
        let run = &mut self.runs[i];
        match taken {
            Taken::Done | Taken::Left => {
                if run.ctx.folder.read_only || matches!(taken, Taken::Left) {
                    run.state.known.insert(r.rel.clone(), r.seen.key());
                }
                run.state.unfinished.remove(&r.rel);
                run.tracker.done(&r.rel);
            }
            Taken::Changed => {
                run.tracker.unsettled(&r.rel, now);
                run.dirty.insert(r.rel);
            }
            Taken::Gone | Taken::Stopped => {
                run.state.unfinished.remove(&r.rel);
                run.tracker.done(&r.rel);
            }
            Taken::Retry { entry, error } => {
                let delay = take::backoff(r.attempts, run.ctx.folder.rescan);
                tracing::warn!(folder = %run.ctx.key, file = %r.rel.to_string_lossy(), attempt = r.attempts + 1,
                    retry_in_ms = delay.as_millis() as u64, error = %error, "inbox file not taken yet; will try again.");
                if let Some(e) = entry {
                    run.state.unfinished.insert(r.rel.clone(), e);
                }
                run.tracker.retry_later(&r.rel, now, delay);
            }
        }
    }

    fn publish(&self) {
        let pending: usize = self.runs.iter().map(|r| r.tracker.len()).sum();
        let in_flight: usize = self.ids.values().map(|(_, rels)| rels.len()).sum();
        self.watcher.env.stats.set_queue(pending.saturating_sub(in_flight), in_flight);
    }

    /// At shutdown: lets takes in flight finish for a while, then abandons the rest.
    async fn drain(&mut self) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()).await {
                Ok(Some(done)) => self.finished(done),
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        in_flight = self.tasks.len(),
                        "inbox shutdown abandons registrations in flight; the next start resolves them."
                    );
                    self.tasks.abort_all();
                    break;
                }
            }
        }
        self.publish();
    }
}
