use super::*;
use std::cell::Cell;

const T: Timeouts = Timeouts {
    first_byte: Duration::from_secs(1),
    header_read: Duration::from_secs(3),
    idle: Duration::from_secs(5),
    write: Duration::from_secs(2),
};

/// A future that wakes itself `wakes` times before it is done, counting its polls.
fn busy(wakes: usize, polls: &Cell<usize>) -> impl Future<Output = ()> + '_ {
    poll_fn(move |cx| {
        polls.set(polls.get() + 1);
        if polls.get() > wakes {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
}

#[tokio::test(start_paused = true)]
async fn the_watchdog_is_polled_when_it_woke_not_each_time_the_connection_does() {
    let activity = Activity::new();
    activity.read();
    let (connection_polls, watchdog_polls) = (Cell::new(0), Cell::new(0));
    let mut watchdog = pin!(watch(&activity, &T));
    let counted = poll_fn(|cx| {
        watchdog_polls.set(watchdog_polls.get() + 1);
        watchdog.as_mut().poll(cx)
    });
    let done = until_closed(busy(1_000, &connection_polls), counted).await;
    assert_eq!(done, Ok(()));
    assert_eq!(connection_polls.get(), 1_001);
    assert_eq!(watchdog_polls.get(), 1, "armed once, never woken since");

    // Its own wake still closes a connection that never ends.
    let started = Instant::now();
    let closed = until_closed(std::future::pending::<()>(), watch(&activity, &T)).await;
    assert_eq!(closed, Err(Closed::Idle));
    assert_eq!(started.elapsed(), T.idle);
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_closed_after_the_first_byte_timeout() {
    let activity = Activity::new();
    let started = Instant::now();
    assert_eq!(watch(&activity, &T).await, Closed::FirstByte);
    assert_eq!(started.elapsed(), T.first_byte);
}

#[tokio::test(start_paused = true)]
async fn idle_counts_from_the_end_of_the_last_response_not_during_one() {
    let activity = Activity::new();
    activity.read();
    let (request, _) = activity.begin();
    let started = Instant::now();
    let watchdog = watch(&activity, &T);
    tokio::pin!(watchdog);
    // A request in flight for longer than the idle timeout is left alone.
    assert!(
        tokio::time::timeout(Duration::from_secs(8), &mut watchdog)
            .await
            .is_err()
    );
    drop(request);
    assert_eq!(watchdog.await, Closed::Idle);
    assert_eq!(started.elapsed(), Duration::from_secs(8) + T.idle);
}

/// How the watchdog of `activity` closes its connection when `then` happens a second after
/// it started watching, and how long after that.
async fn closed_a_second_after(activity: &Activity, then: impl FnOnce()) -> (Closed, Duration) {
    let watchdog = watch(activity, &T);
    tokio::pin!(watchdog);
    let second = Duration::from_secs(1);
    assert!(tokio::time::timeout(second, &mut watchdog).await.is_err());
    let at = Instant::now();
    then();
    (watchdog.await, at.elapsed())
}

/// A head that begins while the watchdog sleeps towards the idle deadline (nothing wakes
/// it) is closed at the head's own deadline, not at the idle one.
#[tokio::test(start_paused = true)]
async fn a_head_not_complete_in_time_is_closed_at_its_deadline() {
    let activity = Activity::new();
    activity.read();
    let closed = closed_a_second_after(&activity, || {
        activity.read();
        activity.reading_head(true);
    });
    assert_eq!(closed.await, (Closed::HeaderRead, T.header_read));
}

/// A head that ends is no longer timed: the connection is then idle as any other.
#[tokio::test(start_paused = true)]
async fn a_head_that_ends_in_time_is_not_closed() {
    let activity = Activity::new();
    activity.read();
    activity.reading_head(true);
    let closed = closed_a_second_after(&activity, || {
        activity.read();
        activity.reading_head(false);
    });
    assert_eq!(closed.await, (Closed::Idle, T.idle));
}

/// A head that came in behind a request (pipelined) is timed from the end of that
/// request's response: before, the server was busy, not the client slow.
#[tokio::test(start_paused = true)]
async fn a_pipelined_head_is_timed_from_the_end_of_the_response_before_it() {
    let activity = Activity::new();
    activity.read();
    let (request, _) = activity.begin();
    activity.reading_head(true);
    let started = Instant::now();
    let watchdog = watch(&activity, &T);
    tokio::pin!(watchdog);
    // Not a multiple of `header_read`, at which the watchdog looks anyway.
    let busy = T.header_read * 2 + Duration::from_secs(1);
    assert!(tokio::time::timeout(busy, &mut watchdog).await.is_err());
    drop(request);
    assert_eq!(watchdog.await, Closed::HeaderRead);
    assert_eq!(started.elapsed(), busy + T.header_read);
}

#[tokio::test(start_paused = true)]
async fn a_write_that_makes_no_progress_closes_even_with_a_request_in_flight() {
    let activity = Activity::new();
    activity.read();
    let (_request, _) = activity.begin();
    let watchdog = watch(&activity, &T);
    tokio::pin!(watchdog);
    assert!(
        tokio::time::timeout(Duration::from_secs(3), &mut watchdog)
            .await
            .is_err()
    );
    let blocked = Instant::now();
    activity.wrote(false);
    activity.wrote(false);
    assert_eq!(watchdog.await, Closed::Write);
    assert_eq!(blocked.elapsed(), T.write);
}
