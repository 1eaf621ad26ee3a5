//! The runtime's behaviour, checked identically on smol, tokio, actix and sim.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use talus_actors::runtime::JoinError;
use talus_actors::{ActorError, Capacity, Runtime, System, TrySendError};

use support::{E, Event, Msg, Probe, hold, within};

on_every_executor!(
    spawned_tasks_can_be_awaited_aborted_and_report_panics,
    blocking_work_and_intervals_run_on_the_runtime,
    ask_gets_a_reply,
    tickers_fire_at_their_interval,
    a_tick_slower_than_its_period_never_starves_the_mailbox,
    spawn_then_results_return_while_the_mailbox_is_served,
    a_pool_runs_n_jobs_at_once,
    a_bounded_mailbox_makes_senders_wait,
    the_first_error_wins_and_every_later_send_sees_it,
    concurrent_failures_agree_on_one_cause,
    cleanup_answers_leftover_waiters_with_the_error,
    a_panicking_handler_becomes_the_closed_result,
    a_panicking_job_becomes_the_closed_result,
    clean_shutdown_drains_in_order_and_then_refuses,
    no_task_is_left_after_shutdown,
    no_task_is_left_after_drop,
);

/// Addresses cross threads and are shared freely; replies travel in messages.
#[test]
fn addresses_are_clone_send_and_sync() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    fn sendable<T: Send + 'static>() {}
    shareable::<talus_actors::Addr<Msg, E>>();
    sendable::<talus_actors::Reply<u64>>();
    sendable::<System<E>>();
}

fn events() -> (async_channel::Sender<Event>, async_channel::Receiver<Event>) {
    async_channel::unbounded()
}

async fn next_event(runtime: &Runtime, events: &async_channel::Receiver<Event>) -> Event {
    within(runtime, "an event", events.recv())
        .await
        .expect("event channel open")
}

/// Regression: a tick handler slower than its period found its next tick due
/// on return, and ticks (served before the mailbox) ran back to back: the
/// actor never read a message again.
async fn a_tick_slower_than_its_period_never_starves_the_mailbox(runtime: Runtime) {
    let (sender, events) = events();
    let system = System::<E>::new(runtime.clone());
    let probe = Probe::new(&sender)
        .ticking("slow", Duration::from_millis(5), Duration::ZERO)
        .with_tick_cost(Duration::from_millis(10));
    let addr = system.start("slow ticker", probe);
    // Let ticks pile up first: from here on a tick is always due.
    while !matches!(next_event(&runtime, &events).await, Event::Tick { .. }) {}
    runtime.sleep(Duration::from_millis(30)).await;
    for n in 1..=20 {
        within(&runtime, "a message between slow ticks", addr.send(Msg::Add(1)))
            .await
            .expect("send");
        let total = within(&runtime, "an answer between slow ticks", addr.ask(Msg::Get))
            .await
            .expect("ask");
        assert_eq!(total, n);
    }
    let mut ticks = 0;
    while let Ok(event) = events.try_recv() {
        ticks += usize::from(matches!(event, Event::Tick { .. }));
    }
    assert!(ticks >= 2, "ticks still run between messages ({ticks})");
    within(&runtime, "shutdown", system.shutdown())
        .await
        .expect("clean shutdown");
}

async fn spawned_tasks_can_be_awaited_aborted_and_report_panics(runtime: Runtime) {
    let monitor = talus_actors::runtime::TaskMonitor::new();
    let guard = monitor.guard();
    let finished = runtime.spawn(async move {
        let _guard = guard;
        6 * 7
    });
    assert_eq!(within(&runtime, "a task", finished).await, Ok(42));
    within(&runtime, "the task to be dropped", monitor.idle()).await;

    let endless = runtime.spawn(futures::future::pending::<()>());
    endless.abort();
    assert_eq!(
        within(&runtime, "an aborted task", endless).await,
        Err(JoinError::Aborted)
    );

    let panicking = runtime.spawn(async { panic!("task gave up") });
    assert_eq!(
        within(&runtime, "a panicking task", panicking).await,
        Err(JoinError::Panicked("task gave up".into()))
    );
}

async fn blocking_work_and_intervals_run_on_the_runtime(runtime: Runtime) {
    let sum = runtime.unblock(|| (1..=100u64).sum::<u64>());
    assert_eq!(within(&runtime, "blocking work", sum).await, Ok(5050));
    let panicking = runtime.unblock(|| panic!("blocking work gave up"));
    assert_eq!(
        within(&runtime, "panicking blocking work", panicking).await,
        Err::<(), _>(JoinError::Panicked("blocking work gave up".into()))
    );

    let started = runtime.now();
    let mut interval = runtime.interval(Duration::from_millis(5));
    for tick in 1..=3u32 {
        let due = within(&runtime, "a tick", interval.next())
            .await
            .expect("intervals never end");
        // A tick is never early, and is due on the fixed-rate schedule.
        assert!(runtime.now() >= due && due >= started + Duration::from_millis(5) * tick);
        if runtime.kind() == "sim" {
            assert_eq!(due, started + Duration::from_millis(5) * tick);
        }
    }
}

async fn ask_gets_a_reply(runtime: Runtime) {
    let (sender, _events) = events();
    let system = System::<E>::new(runtime.clone());
    let probe = system.start("probe", Probe::new(&sender));
    assert_eq!(probe.name(), "probe");
    probe.send(Msg::Add(40)).await.unwrap();
    probe.try_send(Msg::Add(2)).unwrap();
    assert_eq!(within(&runtime, "ask", probe.ask(Msg::Get)).await, Ok(42));
    assert_eq!(system.shutdown().await, Ok(()));
}

async fn tickers_fire_at_their_interval(runtime: Runtime) {
    let (sender, events) = events();
    let system = System::<E>::new(runtime.clone());
    let started = runtime.now();
    let probe = Probe::new(&sender)
        .ticking("fast", Duration::from_millis(10), Duration::ZERO)
        .ticking("slow", Duration::from_millis(25), Duration::ZERO);
    let _addr = system.start("ticker", probe);
    let mut ticks = Vec::new();
    while ticks.len() < 5 {
        if let Event::Tick { name, at } = next_event(&runtime, &events).await {
            ticks.push((name, at - started));
        }
    }
    if runtime.kind() == "sim" {
        let ms = Duration::from_millis;
        assert_eq!(
            ticks,
            vec![
                ("fast", ms(10)),
                ("fast", ms(20)),
                ("slow", ms(25)),
                ("fast", ms(30)),
                ("fast", ms(40))
            ]
        );
    } else {
        // Real timers may be late but never early: the k-th tick of a ticker
        // is due k periods after the start.
        let mut seen = std::collections::HashMap::new();
        for (name, at) in &ticks {
            let count = seen.entry(*name).or_insert(0u32);
            *count += 1;
            let period = if *name == "fast" { 10 } else { 25 };
            assert!(
                *at >= Duration::from_millis(period) * *count,
                "{name} tick {count} came early at {at:?}"
            );
        }
        assert!(
            seen["fast"] >= 2,
            "fast ticker fired {} times in {ticks:?}",
            seen["fast"]
        );
    }
    assert_eq!(system.shutdown().await, Ok(()));
}

async fn spawn_then_results_return_while_the_mailbox_is_served(runtime: Runtime) {
    let (sender, events) = events();
    let system = System::<E>::new(runtime.clone());
    let probe = system.start("io", Probe::new(&sender));
    let (gate, gate_receiver) = async_channel::bounded(1);
    probe.send(Msg::StartGatedJob { gate: gate_receiver }).await.unwrap();
    // The job is parked on its gate, yet the mailbox keeps being served.
    for amount in 1..=3 {
        probe.send(Msg::Add(amount)).await.unwrap();
        assert_eq!(
            within(&runtime, "ask", probe.ask(Msg::Get)).await,
            Ok((1..=amount).sum())
        );
    }
    assert_eq!(probe.ask(Msg::InFlight).await, Ok(1));
    gate.send(7).await.unwrap();
    assert_eq!(
        next_event(&runtime, &events).await,
        Event::JobDone {
            actor: "io".into(),
            value: 7
        }
    );
    assert_eq!(probe.ask(Msg::InFlight).await, Ok(0));
    assert_eq!(system.shutdown().await, Ok(()));
}

async fn a_pool_runs_n_jobs_at_once(runtime: Runtime) {
    let (sender, _events) = events();
    let system = System::<E>::new(runtime.clone());
    let (pool, mailbox) = system.mailbox("pool", Capacity::Unbounded);
    system.run_pool(mailbox, (0..4).map(|_| Probe::new(&sender)));
    let (entered, entered_receiver) = async_channel::unbounded();
    let (release, release_receiver) = async_channel::bounded::<()>(1);
    for _ in 0..4 {
        pool.send(Msg::Hold {
            entered: entered.clone(),
            release: release_receiver.clone(),
        })
        .await
        .unwrap();
    }
    // Four handlers are inside `Hold` together: none can leave before
    // `release` closes, so a pool of fewer workers would never get here.
    let mut workers = BTreeSet::new();
    for _ in 0..4 {
        workers.insert(
            within(&runtime, "a worker to enter", entered_receiver.recv())
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        workers,
        BTreeSet::from(["pool/0", "pool/1", "pool/2", "pool/3"].map(String::from))
    );
    release.close();
    assert_eq!(within(&runtime, "pool shutdown", system.shutdown()).await, Ok(()));
}

async fn a_bounded_mailbox_makes_senders_wait(runtime: Runtime) {
    let (sender, _events) = events();
    let system = System::<E>::new(runtime.clone());
    let probe = system.start_with("bounded", Capacity::Bounded(2), Probe::new(&sender));
    let release = hold(&runtime, &probe).await;
    probe.send(Msg::Add(1)).await.unwrap();
    probe.send(Msg::Add(2)).await.unwrap();
    let mut blocked = Box::pin(probe.send(Msg::Add(3)));
    assert!(
        futures::poll!(blocked.as_mut()).is_pending(),
        "a full mailbox must make the sender wait"
    );
    assert!(matches!(
        probe.try_send(Msg::Add(4)),
        Err(TrySendError::Full(Msg::Add(4)))
    ));
    release.close();
    within(&runtime, "the waiting send", blocked).await.unwrap();
    assert_eq!(probe.ask(Msg::Get).await, Ok(6));
    assert_eq!(system.shutdown().await, Ok(()));
}

fn failed(actor: &str, error: &str) -> ActorError<E> {
    ActorError::Failed {
        actor: actor.into(),
        error: error.into(),
    }
}

async fn the_first_error_wins_and_every_later_send_sees_it(runtime: Runtime) {
    let (sender, events) = events();
    let (bystander_sender, bystander_events) = async_channel::unbounded();
    let system = System::<E>::new(runtime.clone());
    let first = system.start("first", Probe::new(&sender));
    let bystander = system.start("bystander", Probe::new(&bystander_sender));
    first.send(Msg::Fail("disk on fire".into())).await.unwrap();
    let cause = failed("first", "disk on fire");
    assert_eq!(within(&runtime, "closed", system.closed()).await, Err(cause.clone()));
    // A second failure changes nothing.
    assert!(!system.fail("too late".into()));
    assert_eq!(system.closed_result(), Some(Err(cause.clone())));
    assert_eq!(bystander.send(Msg::Add(1)).await, Err(cause.clone()));
    assert_eq!(bystander.ask(Msg::Get).await, Err(cause.clone()));
    assert_eq!(first.ask(Msg::Get).await, Err(cause.clone()));
    assert!(matches!(first.try_send(Msg::Add(1)), Err(TrySendError::Closed(error)) if error == cause));
    // Both actors ran their cleanup with the winning cause, exactly once.
    within(&runtime, "every worker to end", system.tasks().idle()).await;
    for events in [&events, &bystander_events] {
        let cleanups: Vec<Event> = std::iter::from_fn(|| events.try_recv().ok())
            .filter(|event| matches!(event, Event::Cleanup { .. }))
            .collect();
        assert_eq!(cleanups.len(), 1, "{cleanups:?}");
        assert!(matches!(&cleanups[0], Event::Cleanup { result, .. } if *result == Err(cause.clone())));
    }
}

async fn concurrent_failures_agree_on_one_cause(runtime: Runtime) {
    let (sender, _events) = events();
    let system = System::<E>::new(runtime.clone());
    let a = system.start("a", Probe::new(&sender));
    let b = system.start("b", Probe::new(&sender));
    // Both fail at about the same time; which wins depends on the executor,
    // but everybody must see the same one.
    a.send(Msg::Fail("a broke".into())).await.unwrap();
    b.send(Msg::Fail("b broke".into())).await.unwrap();
    let cause = within(&runtime, "closed", system.closed()).await.unwrap_err();
    assert!(
        cause == failed("a", "a broke") || cause == failed("b", "b broke"),
        "{cause:?}"
    );
    if runtime.kind() == "sim" {
        assert_eq!(cause, failed("a", "a broke"), "FIFO scheduling runs a first");
    }
    for addr in [&a, &b] {
        assert_eq!(addr.send(Msg::Add(1)).await, Err(cause.clone()));
        assert_eq!(addr.ask(Msg::Get).await, Err(cause.clone()));
    }
    assert_eq!(system.closed().await, Err(cause));
}

async fn cleanup_answers_leftover_waiters_with_the_error(runtime: Runtime) {
    let (sender, events) = events();
    let system = System::<E>::new(runtime.clone());
    let probe = system.start("busy", Probe::new(&sender));
    let _release = hold(&runtime, &probe).await;
    // Three requests queue up behind the held handler, one more that cleanup drops.
    let mut waiting: Vec<_> = (0..3).map(|_| Box::pin(probe.ask(Msg::GetOrError))).collect();
    for ask in &mut waiting {
        assert!(futures::poll!(ask.as_mut()).is_pending());
    }
    let mut dropped = Box::pin(probe.ask(Msg::Get));
    assert!(futures::poll!(dropped.as_mut()).is_pending());
    assert_eq!(probe.queued(), 4);

    assert!(system.fail("operator pulled the plug".into()));
    let cause = failed("system", "operator pulled the plug");
    for answer in within(&runtime, "answers", join_all(waiting)).await {
        assert_eq!(answer, Ok(Err(cause.clone())), "cleanup answers with the error");
    }
    assert_eq!(
        dropped.await,
        Err(cause.clone()),
        "a dropped waiter sees the closed result"
    );
    assert_eq!(
        next_event(&runtime, &events).await,
        Event::Cleanup {
            actor: String::new(),
            leftover: 4,
            result: Err(cause.clone())
        }
    );
    assert_eq!(system.closed().await, Err(cause));
}

async fn a_panicking_handler_becomes_the_closed_result(runtime: Runtime) {
    let (sender, _events) = events();
    let system = System::<E>::new(runtime.clone());
    let probe = system.start("fragile", Probe::new(&sender));
    probe.send(Msg::Panic("invariant 7 broken".into())).await.unwrap();
    let cause = ActorError::Panicked {
        actor: "fragile".into(),
        message: "invariant 7 broken".into(),
    };
    assert_eq!(within(&runtime, "closed", system.closed()).await, Err(cause.clone()));
    assert_eq!(probe.ask(Msg::Get).await, Err(cause.clone()));
    assert_eq!(cause.to_string(), "closed: actor fragile panicked: invariant 7 broken");
}

async fn a_panicking_job_becomes_the_closed_result(runtime: Runtime) {
    let (sender, _events) = events();
    let system = System::<E>::new(runtime.clone());
    let probe = system.start("jobs", Probe::new(&sender));
    probe.send(Msg::StartPanickingJob).await.unwrap();
    let cause = ActorError::Panicked {
        actor: "jobs".into(),
        message: "job exploded".into(),
    };
    assert_eq!(within(&runtime, "closed", system.closed()).await, Err(cause.clone()));
    assert_eq!(probe.send(Msg::Add(1)).await, Err(cause));
}

async fn clean_shutdown_drains_in_order_and_then_refuses(runtime: Runtime) {
    let (first_sender, first_events) = events();
    let (second_sender, second_events) = events();
    let system = System::<E>::new(runtime.clone());
    // Started downstream first, yet shut down upstream first as told.
    let second = system.start("second", Probe::new(&second_sender));
    let first = system.start("first", Probe::new(&first_sender).forwarding_to(second.clone()));
    for index in 0..5 {
        first.send(Msg::Note(format!("note {index}"))).await.unwrap();
    }
    // A job still in flight when shutdown begins is awaited and handled.
    first
        .send(Msg::StartSleepJob(Duration::from_millis(20), 99))
        .await
        .unwrap();
    assert_eq!(
        within(&runtime, "shutdown", system.shutdown_in_order(&["first", "second"])).await,
        Ok(())
    );

    let mut first_log = Vec::new();
    while let Ok(event) = first_events.try_recv() {
        first_log.push(event);
    }
    let mut second_notes = Vec::new();
    while let Ok(event) = second_events.try_recv() {
        if let Event::Note { note, .. } = event {
            second_notes.push(note);
        }
    }
    assert!(
        first_log.contains(&Event::JobDone {
            actor: "first".into(),
            value: 99
        }),
        "{first_log:?}"
    );
    assert!(matches!(
        first_log.last(),
        Some(Event::Cleanup {
            leftover: 0,
            result: Ok(()),
            ..
        })
    ));
    // `second` was still open while `first` drained: it got every forward,
    // including the one sent after the in-flight job finished.
    let mut expected: Vec<String> = (0..5).map(|index| format!("note {index}")).collect();
    expected.push("job 99".into());
    assert_eq!(second_notes, expected);

    assert_eq!(system.closed().await, Ok(()));
    assert_eq!(first.send(Msg::Add(1)).await, Err(ActorError::Closed));
    assert_eq!(second.ask(Msg::Get).await, Err(ActorError::Closed));
}

async fn no_task_is_left_after_shutdown(runtime: Runtime) {
    let (sender, _events) = events();
    let system = System::<E>::new(runtime.clone());
    let tasks = system.tasks();
    let ticking = system.start(
        "ticking",
        Probe::new(&sender).ticking("t", Duration::from_millis(5), Duration::ZERO),
    );
    let (pool, mailbox) = system.mailbox("pool", Capacity::Bounded(8));
    system.run_pool(mailbox, (0..3).map(|_| Probe::new(&sender)));
    ticking
        .send(Msg::StartSleepJob(Duration::from_millis(10), 1))
        .await
        .unwrap();
    pool.send(Msg::StartSleepJob(Duration::from_millis(10), 2))
        .await
        .unwrap();
    assert!(tasks.live() >= 4, "four workers are running");
    assert_eq!(within(&runtime, "shutdown", system.shutdown()).await, Ok(()));
    assert_eq!(tasks.live(), 0, "shutdown returns only when every task is gone");
}

async fn no_task_is_left_after_drop(runtime: Runtime) {
    let (sender, events) = events();
    let system = System::<E>::new(runtime.clone());
    let tasks = system.tasks();
    let probe = system.start(
        "abandoned",
        Probe::new(&sender).ticking("t", Duration::from_millis(5), Duration::ZERO),
    );
    probe.send(Msg::StartEndlessJob).await.unwrap();
    let _release = hold(&runtime, &probe).await;
    let mut waiting = Box::pin(probe.ask(Msg::GetOrError));
    assert!(futures::poll!(waiting.as_mut()).is_pending());
    assert_eq!(tasks.live(), 2, "the worker and its endless job");

    // The held handler, the endless job and the ticker must all go, and the
    // queued waiter must be answered.
    drop(system);
    within(&runtime, "every task to end", tasks.idle()).await;
    assert_eq!(tasks.live(), 0);
    assert_eq!(waiting.await, Ok(Err(ActorError::Closed)));
    loop {
        if let Event::Cleanup { leftover, result, .. } = next_event(&runtime, &events).await {
            assert_eq!((leftover, result), (1, Err(ActorError::Closed)));
            break;
        }
    }
    assert_eq!(probe.send(Msg::Add(1)).await, Err(ActorError::Closed));
}
