//! The pool on every backend the test run names: what a connection carries back, and when
//! one is opened, kept or closed.

use tessera_scratch::ScratchDb;

use super::*;
use crate::storage::{Store, Tx};

/// The servers the test run names (`TESSERA_TEST_POSTGRES_URL`, `TESSERA_TEST_MYSQL_URL`).
fn servers() -> Vec<String> {
    ["TESSERA_TEST_POSTGRES_URL", "TESSERA_TEST_MYSQL_URL"].into_iter().filter_map(|v| std::env::var(v).ok()).collect()
}

/// A fresh database on each server named, and a SQLite file first when `with_sqlite`.
async fn databases(prefix: &str, with_sqlite: bool) -> Vec<ScratchDb> {
    let mut made = Vec::new();
    if with_sqlite {
        made.push(ScratchDb::create(None, prefix).await.unwrap());
    }
    for server in servers() {
        made.push(ScratchDb::create(Some(&server), prefix).await.unwrap());
    }
    made
}

/// Runs `statement` on a connection for writes of `store`, each durable on its own.
async fn run(store: &Store, statement: &str) -> Result<(), StoreError> {
    store
        .write(async |conn: &mut AnyConnection| conn.execute(statement).await.map(drop).map_err(StoreError::from))
        .await
}

async fn value(conn: &mut AnyConnection) -> i64 {
    let row = sqlx::query("SELECT v FROM probe WHERE id = 1").fetch_one(conn).await.unwrap();
    sqlx::Row::get(&row, "v")
}

/// The value as a session of its own sees it: what was committed.
async fn committed_value(url: &str) -> i64 {
    let other = Store::connect(url, 1).await.unwrap();
    let seen = value(&mut other.conn().await.unwrap()).await;
    other.close().await;
    seen
}

#[tokio::test]
async fn a_transaction_dropped_halfway_leaves_no_lock_and_nothing_on_its_connection() {
    for db in databases("pool_rollback", true).await {
        let url = &db.url;
        // One connection, so that the statements after the drop run on the dropped one's.
        let store = Store::connect(url, 1).await.unwrap();
        run(&store, "CREATE TABLE probe (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)").await.unwrap();
        run(&store, "INSERT INTO probe (id, v) VALUES (1, 0)").await.unwrap();

        let mut tx = store.begin().await.unwrap();
        tx.execute("UPDATE probe SET v = 1 WHERE id = 1").await.unwrap();
        drop(tx);

        // Another session may write the row at once: the rollback was sent without waiting
        // for the connection's next user (each database waits at most a second for a lock).
        let other = Store::connect(url, 1).await.unwrap();
        let mut tx = other.begin().await.unwrap();
        match other.backend() {
            Backend::Postgres => tx.execute("SET LOCAL lock_timeout = '1s'").await.unwrap(),
            Backend::MySql => tx.execute("SET SESSION innodb_lock_wait_timeout = 1").await.unwrap(),
            Backend::Sqlite => Default::default(),
        };
        tx.execute("UPDATE probe SET v = v + 2 WHERE id = 1").await.unwrap();
        tx.commit().await.unwrap();
        other.close().await;

        // The dropped transaction's connection: in no transaction, its write undone.
        let mut conn = store.write_conn().await.unwrap();
        assert_eq!(value(&mut conn).await, 2, "{url}");
        conn.execute("UPDATE probe SET v = 3 WHERE id = 1").await.unwrap();
        conn.finish().await.unwrap();
        assert_eq!(committed_value(url).await, 3, "committed on its own: {url}");
        store.close().await;
        db.remove().await.unwrap();
    }
}

#[tokio::test]
async fn a_connection_whose_begin_was_cut_off_is_closed_not_reused_inside_its_transaction() {
    let Ok(server) = std::env::var("TESSERA_TEST_POSTGRES_URL") else { return };
    let db = ScratchDb::create(Some(&server), "pool_begin").await.unwrap();
    let store = Store::connect(&db.url, 1).await.unwrap();
    run(&store, "CREATE TABLE probe (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)").await.unwrap();
    // The server runs the BEGIN at once and answers after the sleep: the caller has gone.
    let begin = Tx::begin(store.pool.acquire().await.unwrap(), Some("BEGIN; SELECT pg_sleep(0.3)"));
    assert!(tokio::time::timeout(Duration::from_millis(50), begin).await.is_err());
    // On the pool's one connection: a write that must be durable on its own.
    run(&store, "INSERT INTO probe (id, v) VALUES (1, 1)").await.unwrap();
    assert_eq!(committed_value(&db.url).await, 1, "the write was not held in a transaction");
    store.close().await;
    db.remove().await.unwrap();
}

#[tokio::test]
async fn a_connection_refused_for_want_of_a_slot_is_tried_again_until_one_is_free() {
    let Ok(server) = std::env::var("TESSERA_TEST_POSTGRES_URL") else { return };
    let db = ScratchDb::create(Some(&server), "pool_slots").await.unwrap();
    let role = db.name.replace("pool_slots", "pool_role");
    let admin = Store::connect(&server, 1).await.unwrap();
    run(&admin, &format!("CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")).await.unwrap();
    let mut as_role = url::Url::parse(&db.url).unwrap();
    as_role.set_username(&role).unwrap();
    // The role's one slot, held for a moment: the pool is refused (53300) until it is free.
    let held = Store::connect(as_role.as_str(), 1).await.unwrap();
    let lease = held.conn().await.unwrap();
    let store = Store::connect(as_role.as_str(), 1).await.unwrap();
    let release = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(lease);
        held.close().await;
    };
    let (acquired, ()) = tokio::join!(store.conn(), release);
    let row = sqlx::query("SELECT 1 AS n").fetch_one(&mut *acquired.unwrap()).await.unwrap();
    assert_eq!(sqlx::Row::get::<i32, _>(&row, "n"), 1);
    store.close().await;
    db.remove().await.unwrap();
    run(&admin, &format!("DROP ROLE {role}")).await.unwrap();
    admin.close().await;
}

#[tokio::test]
async fn a_statement_cut_off_leaves_its_connection_fit_for_the_next() {
    for server in servers() {
        let store = Store::connect(&server, 1).await.unwrap();
        let sleep = match store.backend() {
            Backend::Postgres => "SELECT pg_sleep(0.3)",
            _ => "SELECT SLEEP(0.3)",
        };
        let mut conn = store.conn().await.unwrap();
        let cut = tokio::time::timeout(Duration::from_millis(50), conn.execute(sleep)).await;
        assert!(cut.is_err(), "the statement was cut off: {server}");
        drop(conn);
        for _ in 0..3 {
            let row = sqlx::query("SELECT 41 + 1 AS n").fetch_one(&mut *store.conn().await.unwrap()).await.unwrap();
            assert_eq!(sqlx::Row::get::<i32, _>(&row, "n"), 42, "{server}");
        }
        store.close().await;
    }
}

#[tokio::test]
async fn closing_waits_for_the_leases_out_then_refuses_new_ones() {
    let db = ScratchDb::create(None, "pool_close").await.unwrap();
    let pool = Pool::new(&db.url, Backend::Sqlite, 2, Duration::from_secs(60), 0).unwrap();
    let lease = pool.acquire().await.unwrap();
    let closing = tokio::spawn({
        let pool = pool.clone();
        async move { pool.close().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!closing.is_finished(), "close waits for the lease out");
    drop(lease);
    tokio::time::timeout(Duration::from_secs(5), closing).await.unwrap().unwrap();
    assert!(matches!(pool.acquire().await, Err(StoreError::Unavailable(sqlx::Error::PoolClosed))));
    db.remove().await.unwrap();
}

/// A connection opened for a caller on another runtime (an HTTP thread's) belongs to the
/// pool's home runtime: it still answers after that other runtime has stopped.
#[tokio::test]
async fn a_connection_belongs_to_the_pools_runtime_not_to_its_first_callers() {
    for server in servers() {
        let store = Store::connect(&server, 1).await.unwrap();
        let elsewhere = store.clone();
        let (done, finished) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let mut conn = elsewhere.conn().await.unwrap();
                conn.execute("SELECT 1").await.unwrap();
                conn.finish().await.unwrap();
            });
            drop(runtime);
            done.send(()).unwrap();
        });
        finished.await.unwrap();
        // The pool's one connection, taken without a ping (it was used a moment ago).
        let row = sqlx::query("SELECT 41 + 1 AS n").fetch_one(&mut *store.conn().await.unwrap()).await.unwrap();
        assert_eq!(sqlx::Row::get::<i32, _>(&row, "n"), 42, "{server}");
        store.close().await;
    }
}

/// Runs `work` on a thread of its own, on a single-threaded runtime of its own (as an HTTP
/// thread does), and answers what it answers.
fn on_http_thread<T: Send + 'static>(work: impl AsyncFnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(work())
    })
    .join()
    .unwrap()
}

fn backend_of(url: &str) -> Backend {
    Backend::from_url(url).unwrap()
}

fn shard_of(lease: &Lease) -> usize {
    lease.slot.as_ref().map(|slot| slot.shard).unwrap()
}

/// An HTTP thread's connections are opened, and answer, on its own runtime: its queries run
/// while the home runtime is not driven at all (a connection of the home shard would never
/// even be opened), and that holds for one given back in an unknown state (pinged on its way
/// back) too. Checked not vacuous: without `enter` the queries time out.
#[test]
fn an_http_threads_connections_live_on_its_own_runtime() {
    for server in servers() {
        let home = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // One HTTP thread and three connections: two for the thread, one for the home shard.
        let pool = home.block_on(async { Pool::new(&server, backend_of(&server), 3, Duration::from_secs(60), 1) });
        let pool = pool.unwrap();
        assert_eq!(pool.shared.shards.sizes(), [1, 2], "{server}");
        let thread = pool.clone();
        let answered = on_http_thread(async move || {
            thread.enter();
            let queries = async {
                for n in 0..4 {
                    let mut lease = thread.acquire().await.unwrap();
                    assert_eq!(shard_of(&lease), 1);
                    let row = sqlx::query("SELECT 40 + 2 AS n").fetch_one(&mut *lease).await.unwrap();
                    assert_eq!(sqlx::Row::get::<i32, _>(&row, "n"), 42, "query {n}");
                    if n % 2 == 0 {
                        lease.set_state(State::Settled);
                    }
                }
                // Those given back unsettled are pinged on this runtime and kept: both
                // connections idle, both permits back.
                while thread.shared.shards.idle(1) < 2 || thread.shared.shards.get(1).permits.available_permits() < 2 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            };
            let answered = tokio::time::timeout(Duration::from_secs(10), queries).await;
            thread.leave().await;
            assert_eq!(thread.shared.shards.idle(1), 0, "closed as the thread left");
            answered
        });
        assert!(answered.is_ok(), "the thread's queries waited for the home runtime: {server}");
        home.block_on(pool.close());
    }
}

/// A thread whose own connections are all in use borrows the home shard's, but not the half
/// kept for the work handed to the background, and no more than `max` are ever out; once it
/// has left, what it gives back is dropped and it uses the home shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn an_http_thread_borrows_from_home_within_its_reserve_and_keeps_nothing_after_leaving() {
    for server in servers() {
        // Three for the thread, two for the home shard, of which one may be lent.
        let pool = Pool::new(&server, backend_of(&server), 5, Duration::from_secs(60), 1).unwrap();
        assert_eq!((pool.shared.shards.sizes(), pool.shared.shards.lendable()), (vec![2, 3], 1), "{server}");
        let thread = pool.clone();
        let mut leases = on_http_thread(async move || {
            thread.enter();
            let mut leases = Vec::new();
            for _ in 0..4 {
                leases.push(thread.acquire().await.unwrap());
            }
            assert_eq!(leases.iter().map(shard_of).collect::<Vec<_>>(), [1, 1, 1, 0]);
            let fifth = tokio::time::timeout(Duration::from_millis(300), thread.acquire()).await;
            assert!(fifth.is_err(), "the home shard's reserve is not lent");
            // One of its own given back: a caller waiting on the thread gets it.
            let mut waiting = std::pin::pin!(thread.acquire());
            tokio::select! {
                biased;
                _ = waiting.as_mut() => panic!("a connection free while all are out"),
                () = std::future::ready(()) => {}
            }
            leases.remove(0);
            let again = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
            assert_eq!(shard_of(&again), 1);
            leases.push(again);

            let mut kept = leases.remove(0);
            kept.set_state(State::Settled);
            thread.leave().await;
            drop(kept);
            assert_eq!(thread.shared.shards.idle(1), 0, "given back after leaving: dropped, not kept");
            leases
        });
        // The reserve is there for the home runtime's callers while the thread holds its all.
        let reserved = tokio::time::timeout(Duration::from_secs(5), pool.acquire()).await.unwrap().unwrap();
        assert_eq!(shard_of(&reserved), 0);
        drop(reserved);
        leases.clear();
        assert_eq!(pool.shared.shards.get(1).permits.available_permits(), 3);
        pool.close().await;
    }
}

/// How `max` is shared: threads get `2 max / (2 threads + 1)` each when that is at least two,
/// the home shard the rest, half of it (rounded down) lendable; SQLite has no threads' shards.
#[tokio::test]
async fn the_pool_is_shared_between_home_and_threads_as_documented() {
    let home = Handle::current();
    let shares = |backend, max, threads| {
        let shards = Shards::new(backend, max, threads, home.clone());
        (shards.sizes(), shards.lendable())
    };
    assert_eq!(shares(Backend::Postgres, 10, 2), (vec![2, 4, 4], 1));
    assert_eq!(shares(Backend::MySql, 20, 2), (vec![4, 8, 8], 2));
    assert_eq!(shares(Backend::Postgres, 10, 8), (vec![10], 0), "a share of one is not cut off");
    assert_eq!(shares(Backend::Postgres, 1, 2), (vec![1], 0));
    assert_eq!(shares(Backend::Postgres, 10, 0), (vec![10], 0));
    assert_eq!(shares(Backend::Sqlite, 10, 2), (vec![10], 0));
}

/// HTTP threads start, and enter, at the same moment: each gets a shard of its own.
#[tokio::test]
async fn http_threads_entering_together_each_get_a_shard_of_their_own() {
    for server in servers() {
        let pool = Pool::new(&server, backend_of(&server), 10, Duration::from_secs(60), 2).unwrap();
        let together = Arc::new(std::sync::Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (pool, together) = (pool.clone(), together.clone());
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    runtime.block_on(async {
                        together.wait();
                        pool.enter();
                        let mut lease = pool.acquire().await.unwrap();
                        lease.set_state(State::Settled);
                        let shard = shard_of(&lease);
                        drop(lease);
                        // Neither leaves before both have taken a connection.
                        together.wait();
                        pool.leave().await;
                        shard
                    })
                })
            })
            .collect();
        let mut shards: Vec<usize> = threads.into_iter().map(|thread| thread.join().unwrap()).collect();
        shards.sort_unstable();
        assert_eq!(shards, [1, 2], "{server}");
        pool.close().await;
    }
}
