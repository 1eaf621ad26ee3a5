//! The deterministic backend: one thread, FIFO scheduling, virtual time and a
//! seeded RNG, so the same seed replays the same run.
//!
//! Owns: the run queue, the virtual clock and its timers, the RNG. Tasks run
//! only inside [`Sim::block_on`] (or [`Sim::run_until_idle`]) on the calling
//! thread, in the order they were woken.
//!
//! Lifecycle: time stands still while any task can run; when every task is
//! waiting, time jumps to the earliest timer, whose waiters (in the order
//! they were created) are woken. Blocking work runs inline when polled.
//! Dropping the [`Sim`] drops every unfinished task.
//!
//! Invariant: nothing here reads real time or real randomness, and no
//! iteration order depends on hashing, so a run is a pure function of the
//! seed and the code. Futures that are woken from other threads (real I/O,
//! real timers) break that and must not be used under `sim`.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use async_task::{Runnable, Task};

use super::clock::SeededRng;
use super::{Blocking, BoxFuture, Clock, Runtime, RuntimeParts, Spawn, Timer};

/// Wall-clock time at virtual time zero (2025-01-01T00:00:00Z) unless set.
pub const DEFAULT_WALL_ORIGIN_MS: u64 = 1_735_689_600_000;

/// A deterministic executor. Not `Clone`: it is the one owner of the tasks.
/// Components get a [`Runtime`] from [`Sim::runtime`].
pub struct Sim {
    shared: Arc<SimShared>,
}

struct SimShared {
    queue: Mutex<VecDeque<Runnable>>,
    /// Every unfinished task, so dropping the simulation cancels them all,
    /// including those parked on a channel with nothing left to wake them.
    tasks: Mutex<BTreeMap<u64, Task<()>>>,
    next_task: AtomicU64,
    time: Mutex<VirtualTime>,
    rng: Arc<SeededRng>,
    wall_origin_ms: u64,
}

#[derive(Default)]
struct VirtualTime {
    now: Duration,
    /// Waiting timers by (deadline, creation number): ties wake in creation order.
    timers: BTreeMap<(Duration, u64), Waker>,
    next_timer: u64,
}

/// Locks a mutex; a poisoned lock (a panic while held) is still usable here
/// because every critical section leaves the state consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Sim {
    /// A simulation whose RNG starts from `seed`, at virtual time zero.
    pub fn new(seed: u64) -> Sim {
        Sim::with_wall_origin(seed, DEFAULT_WALL_ORIGIN_MS)
    }

    /// Like [`Sim::new`], with the wall clock reading `wall_origin_ms` at
    /// virtual time zero.
    pub fn with_wall_origin(seed: u64, wall_origin_ms: u64) -> Sim {
        Sim {
            shared: Arc::new(SimShared {
                queue: Mutex::new(VecDeque::new()),
                tasks: Mutex::new(BTreeMap::new()),
                next_task: AtomicU64::new(0),
                time: Mutex::new(VirtualTime::default()),
                rng: Arc::new(SeededRng::new(seed)),
                wall_origin_ms,
            }),
        }
    }

    /// The runtime whose tasks, timers, clock and RNG are this simulation's.
    pub fn runtime(&self) -> Runtime {
        let handle = Arc::new(SimHandle {
            shared: Arc::downgrade(&self.shared),
        });
        Runtime::from_parts(RuntimeParts {
            kind: "sim",
            spawner: handle.clone(),
            timer: handle.clone(),
            clock: handle.clone(),
            rng: self.shared.rng.clone(),
            blocking: handle,
        })
    }

    /// Virtual time since the simulation started.
    pub fn now(&self) -> Duration {
        lock(&self.shared.time).now
    }

    /// Runs tasks and advances virtual time until `future` completes.
    ///
    /// # Panics
    ///
    /// If `future` is still pending when no task can run and no timer is
    /// left: in a closed simulated world that is a deadlock, and carrying on
    /// would hang the test forever.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let mut future = pin!(future);
        let flag = Arc::new(WakeFlag(AtomicBool::new(true)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        loop {
            if flag.0.swap(false, Ordering::AcqRel)
                && let Poll::Ready(output) = future.as_mut().poll(&mut cx)
            {
                return output;
            }
            if self.run_one() || flag.0.load(Ordering::Acquire) {
                continue;
            }
            if !self.fire_next_timers() {
                panic!(
                    "sim deadlock at {:?}: the awaited future is pending, no task can run and no timer is set",
                    self.now()
                );
            }
        }
    }

    /// Runs tasks until none can run, without advancing virtual time.
    pub fn run_until_idle(&self) {
        while self.run_one() {}
    }

    /// Runs tasks and advances virtual time by `duration`.
    pub fn run_for(&self, duration: Duration) {
        let sleep = self.runtime().sleep(duration);
        self.block_on(sleep);
        self.run_until_idle();
    }

    /// How many tasks are queued to run now.
    pub fn runnable(&self) -> usize {
        lock(&self.shared.queue).len()
    }

    fn run_one(&self) -> bool {
        // The lock is released before the task runs: it may wake others.
        let next = lock(&self.shared.queue).pop_front();
        match next {
            Some(runnable) => {
                runnable.run();
                true
            }
            None => false,
        }
    }

    /// Jumps to the earliest deadline and wakes every timer due then.
    fn fire_next_timers(&self) -> bool {
        let due: Vec<Waker> = {
            let mut time = lock(&self.shared.time);
            let Some((&(deadline, _), _)) = time.timers.first_key_value() else {
                return false;
            };
            time.now = time.now.max(deadline);
            let later = time.timers.split_off(&(deadline, u64::MAX));
            std::mem::replace(&mut time.timers, later).into_values().collect()
        };
        for waker in due {
            waker.wake();
        }
        true
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // Cancelling a task drops its future, which may wake or spawn others;
        // each batch is taken out first so that never re-enters a lock.
        loop {
            let tasks = std::mem::take(&mut *lock(&self.shared.tasks));
            let queued = std::mem::take(&mut *lock(&self.shared.queue));
            if tasks.is_empty() && queued.is_empty() {
                break;
            }
            drop(tasks);
            drop(queued);
        }
        let timers = std::mem::take(&mut lock(&self.shared.time).timers);
        drop(timers);
    }
}

struct WakeFlag(AtomicBool);

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// What the runtime holds: a weak link, so tasks holding the runtime never
/// keep the simulation (and so themselves) alive.
struct SimHandle {
    shared: Weak<SimShared>,
}

impl Spawn for SimHandle {
    fn spawn_detached(&self, task: BoxFuture<()>) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let id = shared.next_task.fetch_add(1, Ordering::Relaxed);
        let registry = self.shared.clone();
        let task = async move {
            task.await;
            let handle = registry.upgrade().and_then(|shared| lock(&shared.tasks).remove(&id));
            // Dropping our own handle while running only marks it closed.
            drop(handle);
        };
        let queue = self.shared.clone();
        let schedule = move |runnable: Runnable| {
            if let Some(shared) = queue.upgrade() {
                lock(&shared.queue).push_back(runnable);
            }
            // Otherwise the simulation is gone and dropping the runnable
            // drops the task.
        };
        let (runnable, task) = async_task::spawn(task, schedule);
        lock(&shared.tasks).insert(id, task);
        runnable.schedule();
    }
}

impl Timer for SimHandle {
    fn sleep(&self, duration: Duration) -> BoxFuture<()> {
        let deadline = match self.shared.upgrade() {
            Some(shared) => lock(&shared.time).now.saturating_add(duration),
            None => Duration::MAX,
        };
        Box::pin(SimSleep {
            shared: self.shared.clone(),
            deadline,
            key: None,
        })
    }
}

impl Clock for SimHandle {
    fn monotonic(&self) -> Duration {
        self.shared
            .upgrade()
            .map_or(Duration::ZERO, |shared| lock(&shared.time).now)
    }

    fn wall_ms(&self) -> u64 {
        self.shared.upgrade().map_or(0, |shared| {
            let now_ms = u64::try_from(lock(&shared.time).now.as_millis()).unwrap_or(u64::MAX);
            shared.wall_origin_ms.saturating_add(now_ms)
        })
    }
}

impl Blocking for SimHandle {
    fn run_blocking(&self, work: Box<dyn FnOnce() + Send>) -> BoxFuture<()> {
        Box::pin(async move { work() })
    }
}

struct SimSleep {
    shared: Weak<SimShared>,
    deadline: Duration,
    key: Option<(Duration, u64)>,
}

impl Future for SimSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(shared) = self.shared.upgrade() else {
            // The simulation is gone; this task is about to be dropped.
            return Poll::Pending;
        };
        let mut time = lock(&shared.time);
        if time.now >= self.deadline {
            if let Some(key) = self.key.take() {
                time.timers.remove(&key);
            }
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(key) => key,
            None => {
                let key = (self.deadline, time.next_timer);
                time.next_timer += 1;
                key
            }
        };
        time.timers.insert(key, cx.waker().clone());
        drop(time);
        self.key = Some(key);
        Poll::Pending
    }
}

impl Drop for SimSleep {
    fn drop(&mut self) {
        if let (Some(key), Some(shared)) = (self.key, self.shared.upgrade()) {
            lock(&shared.time).timers.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_jumps_to_the_next_timer_only_when_idle() {
        let sim = Sim::new(1);
        let runtime = sim.runtime();
        let order = Arc::new(Mutex::new(Vec::new()));
        for (name, delay_ms) in [("b", 20u64), ("a", 10), ("c", 20)] {
            let runtime = runtime.clone();
            let order = order.clone();
            runtime.clone().spawn_detached(Box::pin(async move {
                runtime.sleep(Duration::from_millis(delay_ms)).await;
                lock(&order).push((name, runtime.now()));
            }));
        }
        sim.run_for(Duration::from_millis(25));
        assert_eq!(
            *lock(&order),
            vec![
                ("a", Duration::from_millis(10)),
                ("b", Duration::from_millis(20)),
                ("c", Duration::from_millis(20)),
            ]
        );
        assert_eq!(sim.now(), Duration::from_millis(25));
    }

    #[test]
    fn wall_clock_follows_virtual_time() {
        let sim = Sim::with_wall_origin(1, 1_000);
        let runtime = sim.runtime();
        sim.run_for(Duration::from_millis(1_500));
        assert_eq!(runtime.wall_ms(), 2_500);
    }

    #[test]
    #[should_panic(expected = "sim deadlock")]
    fn a_future_that_can_never_finish_is_reported() {
        let sim = Sim::new(1);
        sim.block_on(futures::future::pending::<()>());
    }

    #[test]
    fn dropping_the_sim_drops_unfinished_tasks() {
        let sim = Sim::new(1);
        let monitor = crate::runtime::TaskMonitor::new();
        let guard = monitor.guard();
        let runtime = sim.runtime();
        runtime.spawn_detached(Box::pin(async move {
            let _guard = guard;
            futures::future::pending::<()>().await;
        }));
        sim.run_until_idle();
        assert_eq!(monitor.live(), 1);
        drop(sim);
        assert_eq!(monitor.live(), 0);
    }
}
