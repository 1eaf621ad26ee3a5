//! The executor behind [`Runtime::smol`](super::Runtime::smol) and
//! [`Runtime::smol_with_threads`](super::Runtime::smol_with_threads): a
//! small work-stealing pool of threads over `async-task`, with `async-io`
//! timers and the `blocking` pool around it as before.
//!
//! Why not `async-executor`: it puts every wake-up on its global queue and
//! wakes another thread for it, so an `ask` (the caller wakes the actor, the
//! actor wakes the caller) crossed threads twice, each a futex wake and a
//! park: about 5x actix's round trip. Here a task woken by a worker thread
//! of the same pool goes into that worker's *next* slot and runs right after
//! the waker's task yields, on the same thread, with no other thread woken:
//! a message round trip stays on one thread and in its cache.
//!
//! The rules, each for a reason:
//! - **Next slot** (one per worker, not stealable): a task woken from this
//!   worker runs next. The task it displaces goes to the back of the
//!   worker's local queue, and a sleeping worker is woken to steal it.
//! - **At most [`NEXT_SLOT_STREAK`] next-slot runs in a row**: then the slot
//!   goes to the back of the local queue, so two tasks waking each other
//!   forever cannot starve the rest.
//! - **A task that wakes itself while running** (`yield_now`) goes to the
//!   back of the local queue, never to the next slot, or a yield would
//!   return to the same task at once.
//! - **Wake-ups from elsewhere** (another pool's thread, a timer, the
//!   blocking pool, a plain thread) go to the global queue and wake one
//!   sleeping worker.
//! - **The global queue is checked every [`GLOBAL_EVERY`] ticks** even when
//!   local work remains, so outside wake-ups are not starved by busy
//!   workers.
//! - **An idle worker steals** half of another worker's local queue before
//!   it sleeps; a worker that took work and sees more left wakes another.
//!
//! Sleeping is lost-wake-up free by the usual pairing: a worker announces
//! itself sleeping (under the sleepers lock, a `SeqCst` count), then looks
//! at every queue once more before it parks; a waker publishes its task,
//! issues a `SeqCst` fence, then reads the count and unparks a sleeper. One
//! of the two always sees the other.
//!
//! A panic in a task is caught around the poll, so the worker thread lives
//! on (a task's own panic reaches its `JoinHandle` through the catch that
//! wraps every spawned future).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};

use async_task::{Runnable, ScheduleInfo, WithInfo};
use concurrent_queue::ConcurrentQueue;
use parking::{Parker, Unparker};

/// Next-slot runs a worker makes in a row before it takes from its queue.
pub const NEXT_SLOT_STREAK: u32 = 3;

/// A worker looks at the global queue first every this many ticks.
pub const GLOBAL_EVERY: u32 = 61;

/// Tasks a worker's local queue holds; beyond it, half go to the global
/// queue.
const LOCAL_CAPACITY: usize = 256;

struct Shared {
    global: ConcurrentQueue<Runnable>,
    locals: Vec<ConcurrentQueue<Runnable>>,
    /// Parked workers (index and unparker); `idle` is its length.
    sleepers: Mutex<Vec<(usize, Unparker)>>,
    idle: AtomicUsize,
    unparkers: Vec<Unparker>,
    stopped: AtomicBool,
}

impl Shared {
    fn sleepers(&self) -> MutexGuard<'_, Vec<(usize, Unparker)>> {
        // A panic cannot happen while the lock is held; a poisoned lock
        // holds a consistent list all the same.
        self.sleepers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes one parked worker, if any is parked. Call after publishing a
    /// task.
    fn wake_one(&self) {
        fence(Ordering::SeqCst);
        if self.idle.load(Ordering::SeqCst) == 0 {
            return;
        }
        let woken = {
            let mut sleepers = self.sleepers();
            let woken = sleepers.pop();
            self.idle.store(sleepers.len(), Ordering::SeqCst);
            woken
        };
        if let Some((_, unparker)) = woken {
            unparker.unpark();
        }
    }

    /// Whether any queue holds a task (the next slots aside).
    fn has_work(&self) -> bool {
        !self.global.is_empty() || self.locals.iter().any(|local| !local.is_empty())
    }

    /// Puts `runnable` at the back of worker `index`'s queue, or half of
    /// that queue on the global one when it is full.
    fn push_local(&self, index: usize, runnable: Runnable) {
        let local = &self.locals[index];
        if let Err(concurrent_queue::PushError::Full(runnable)) = local.push(runnable) {
            for _ in 0..LOCAL_CAPACITY / 2 {
                match local.pop() {
                    Ok(moved) => self.push_global(moved),
                    Err(_) => break,
                }
            }
            self.push_global(runnable);
        }
    }

    fn push_global(&self, runnable: Runnable) {
        // The global queue is unbounded and closed only at shutdown, after
        // which `schedule` queues nothing.
        drop(self.global.push(runnable));
    }

    fn schedule(self: &Arc<Shared>, runnable: Runnable, info: ScheduleInfo) {
        if self.stopped.load(Ordering::Acquire) {
            // No worker will run it: cancel it. Not here, though: the waker
            // may be called with a lock held (a channel notifying its
            // listeners) that the task's own drop takes again.
            let cancelled = std::thread::Builder::new()
                .name("talus-smol-cancel".into())
                .spawn(move || drop(runnable));
            if let Err(error) = cancelled {
                tracing::warn!(%error, "a task woken after its pool stopped cannot be cancelled: it is leaked");
            }
            return;
        }
        let runnable = WORKER.with(|worker| {
            let worker = worker.borrow();
            let Some(worker) = worker.as_ref().filter(|worker| Arc::ptr_eq(&worker.shared, self)) else {
                return Some(runnable);
            };
            if info.woken_while_running {
                self.push_local(worker.index, runnable);
            } else if let Some(displaced) = worker.next.replace(Some(runnable)) {
                self.push_local(worker.index, displaced);
            } else {
                return None;
            }
            self.wake_one();
            None
        });
        if let Some(runnable) = runnable {
            self.push_global(runnable);
            self.wake_one();
        }
    }
}

/// The worker the current thread is, if it is one.
struct Worker {
    shared: Arc<Shared>,
    index: usize,
    next: Cell<Option<Runnable>>,
}

std::thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

/// A pool of worker threads. Dropping it stops the threads (without
/// joining them: the last handle may be dropped on one of them); tasks
/// still queued are dropped, and tasks woken later are dropped at once.
pub struct Pool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.shared.locals.len())
            .field("idle", &self.shared.idle.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Starts `threads` (at least one) worker threads named `{name}-N`.
    pub fn start(threads: usize, name: &str) -> std::io::Result<Pool> {
        let threads = threads.max(1);
        let parkers: Vec<(Parker, Unparker)> = (0..threads).map(|_| parking::pair()).collect();
        let shared = Arc::new(Shared {
            global: ConcurrentQueue::unbounded(),
            locals: (0..threads).map(|_| ConcurrentQueue::bounded(LOCAL_CAPACITY)).collect(),
            sleepers: Mutex::new(Vec::with_capacity(threads)),
            idle: AtomicUsize::new(0),
            unparkers: parkers.iter().map(|(_, unparker)| unparker.clone()).collect(),
            stopped: AtomicBool::new(false),
        });
        let pool = Pool { shared };
        for (index, (parker, _)) in parkers.into_iter().enumerate() {
            let shared = pool.shared.clone();
            // A thread that fails to start leaves `pool` to be dropped,
            // which stops the ones already running.
            std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || work(shared, index, parker))?;
        }
        Ok(pool)
    }

    /// Spawns `future` as a detached task.
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        spawn_on(&self.shared, future);
    }
}

fn spawn_on<F>(shared: &Arc<Shared>, future: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let shared = shared.clone();
    let schedule = move |runnable, info| shared.schedule(runnable, info);
    let (runnable, task) = async_task::spawn(future, WithInfo(schedule));
    task.detach();
    runnable.schedule();
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.global.close();
        for unparker in &self.shared.unparkers {
            unparker.unpark();
        }
    }
}

/// One worker thread's life.
fn work(shared: Arc<Shared>, index: usize, parker: Parker) {
    WORKER.with(|worker| {
        *worker.borrow_mut() = Some(Worker {
            shared: shared.clone(),
            index,
            next: Cell::new(None),
        });
    });
    let mut tick: u32 = 0;
    let mut streak: u32 = 0;
    while !shared.stopped.load(Ordering::Acquire) {
        tick = tick.wrapping_add(1);
        match find(&shared, index, tick, &mut streak) {
            Some(runnable) => {
                // The task's own panic is caught inside it (see the module
                // docs); this catch only keeps the thread alive.
                let _ = catch_unwind(AssertUnwindSafe(|| runnable.run()));
            }
            None => sleep(&shared, index, &parker),
        }
    }
    // Stopped: drop what is left here, on a worker thread, as the tasks'
    // own drops may expect.
    let next = WORKER.with(|worker| worker.borrow_mut().take());
    drop(next);
    while let Ok(runnable) = shared.locals[index].pop() {
        drop(runnable);
    }
    while let Ok(runnable) = shared.global.pop() {
        drop(runnable);
    }
}

/// The next task for worker `index`, by the rules in the module docs.
fn find(shared: &Shared, index: usize, tick: u32, streak: &mut u32) -> Option<Runnable> {
    if tick.is_multiple_of(GLOBAL_EVERY)
        && let Ok(runnable) = shared.global.pop()
    {
        *streak = 0;
        return Some(runnable);
    }
    let next = WORKER.with(|worker| worker.borrow().as_ref().and_then(|worker| worker.next.take()));
    if let Some(runnable) = next {
        if *streak < NEXT_SLOT_STREAK {
            *streak += 1;
            return Some(runnable);
        }
        shared.push_local(index, runnable);
    }
    *streak = 0;
    let local = &shared.locals[index];
    if let Ok(runnable) = local.pop() {
        return Some(runnable);
    }
    if let Ok(runnable) = shared.global.pop() {
        // Take a fair share of what else waits there.
        let share = shared.global.len() / shared.locals.len();
        for _ in 0..share.min(LOCAL_CAPACITY / 2) {
            match shared.global.pop() {
                Ok(moved) => shared.push_local(index, moved),
                Err(_) => break,
            }
        }
        if !shared.global.is_empty() || !local.is_empty() {
            shared.wake_one();
        }
        return Some(runnable);
    }
    let workers = shared.locals.len();
    for offset in 1..workers {
        let victim = &shared.locals[(index + offset) % workers];
        let half = victim.len().div_ceil(2);
        if half == 0 {
            continue;
        }
        let Ok(first) = victim.pop() else { continue };
        for _ in 1..half {
            match victim.pop() {
                Ok(moved) => shared.push_local(index, moved),
                Err(_) => break,
            }
        }
        if !local.is_empty() {
            shared.wake_one();
        }
        return Some(first);
    }
    None
}

/// Parks worker `index` until a task may be waiting for it.
fn sleep(shared: &Shared, index: usize, parker: &Parker) {
    {
        let mut sleepers = shared.sleepers();
        sleepers.push((index, shared.unparkers[index].clone()));
        shared.idle.store(sleepers.len(), Ordering::SeqCst);
    }
    fence(Ordering::SeqCst);
    if !shared.has_work() && !shared.stopped.load(Ordering::Acquire) {
        parker.park();
    }
    let mut sleepers = shared.sleepers();
    sleepers.retain(|(sleeper, _)| *sleeper != index);
    shared.idle.store(sleepers.len(), Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// How long a test waits for what must happen before calling it hung.
    const HANG: Duration = Duration::from_secs(30);

    /// Spawns `future` on `pool` and waits for it to finish.
    fn run_on(pool: &Pool, future: impl Future<Output = ()> + Send + 'static) {
        let (done, finished) = mpsc::channel();
        pool.spawn(async move {
            future.await;
            let _ = done.send(());
        });
        finished.recv_timeout(HANG).expect("the task finished");
    }

    /// A task that yields goes to the back of the queue, not to the next
    /// slot: on a single worker, the task it waits for runs right after
    /// its first yield.
    #[test]
    fn a_yielding_task_lets_the_others_run() {
        let pool = Pool::start(1, "test-yield").expect("pool");
        let flag = Arc::new(AtomicBool::new(false));
        let yields = Arc::new(AtomicUsize::new(0));
        let (inner_flag, setter_flag, shared, counted) =
            (flag.clone(), flag.clone(), pool.shared.clone(), yields.clone());
        run_on(&pool, async move {
            spawn_on(&shared, async move { setter_flag.store(true, Ordering::SeqCst) });
            while !inner_flag.load(Ordering::SeqCst) {
                counted.fetch_add(1, Ordering::SeqCst);
                super::super::yield_now().await;
            }
        });
        assert_eq!(yields.load(Ordering::SeqCst), 1, "the other task ran after one yield");
    }

    /// Two tasks waking each other forever (each run from the next slot)
    /// cannot starve a third task waiting in the global queue.
    #[test]
    fn a_ping_pong_pair_does_not_starve_the_rest() {
        let pool = Pool::start(1, "test-pingpong").expect("pool");
        let stop = Arc::new(AtomicBool::new(false));
        let (ping_tx, ping_rx) = async_channel::bounded::<()>(1);
        let (pong_tx, pong_rx) = async_channel::bounded::<()>(1);
        let ping_stop = stop.clone();
        pool.spawn(async move {
            while !ping_stop.load(Ordering::SeqCst) {
                if ping_tx.send(()).await.is_err() || pong_rx.recv().await.is_err() {
                    break;
                }
            }
        });
        pool.spawn(async move {
            while let Ok(()) = ping_rx.recv().await {
                if pong_tx.send(()).await.is_err() {
                    break;
                }
            }
        });
        let setter = stop.clone();
        run_on(&pool, async move { setter.store(true, Ordering::SeqCst) });
        assert!(stop.load(Ordering::SeqCst));
    }

    /// Two tasks spawned from one worker both run at once on a two-worker
    /// pool: the second worker steals one (a barrier that needs both would
    /// otherwise never open).
    #[test]
    fn an_idle_worker_steals_from_a_busy_one() {
        let pool = Pool::start(2, "test-steal").expect("pool");
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let (done, finished) = mpsc::channel();
        let shared = pool.shared.clone();
        pool.spawn(async move {
            for _ in 0..2 {
                let (barrier, done) = (barrier.clone(), done.clone());
                spawn_on(&shared, async move {
                    barrier.wait();
                    let _ = done.send(());
                });
            }
        });
        for _ in 0..2 {
            finished.recv_timeout(HANG).expect("both tasks ran at once");
        }
    }

    /// A task woken from a plain thread wakes a sleeping worker.
    #[test]
    fn a_wake_from_outside_reaches_a_sleeping_worker() {
        let pool = Pool::start(2, "test-outside").expect("pool");
        let (sender, receiver) = async_channel::bounded::<u32>(1);
        let (done, finished) = mpsc::channel();
        pool.spawn(async move {
            let _ = done.send(receiver.recv().await.ok());
        });
        std::thread::spawn(move || sender.send_blocking(7))
            .join()
            .expect("sender")
            .expect("sent");
        assert_eq!(finished.recv_timeout(HANG).expect("woken"), Some(7));
    }

    /// A panicking task leaves its worker running.
    #[test]
    fn a_panic_does_not_stop_the_worker() {
        let pool = Pool::start(1, "test-panic").expect("pool");
        pool.spawn(async { panic!("a task's own panic") });
        run_on(&pool, async {});
    }

    /// Dropping the pool drops the tasks still waiting on it.
    #[test]
    fn dropping_the_pool_drops_its_tasks() {
        struct Signal(mpsc::Sender<()>);
        impl Drop for Signal {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let pool = Pool::start(2, "test-drop").expect("pool");
        let (dropped, was_dropped) = mpsc::channel();
        let (started, was_started) = mpsc::channel();
        let (never, forever) = async_channel::bounded::<()>(1);
        pool.spawn(async move {
            let _signal = Signal(dropped);
            let _ = started.send(());
            let _ = forever.recv().await;
        });
        was_started.recv_timeout(HANG).expect("started");
        drop(pool);
        // Woken after the pool stopped, the task is cancelled (dropped).
        drop(never);
        was_dropped.recv_timeout(HANG).expect("the task was dropped");
    }
}
