//! A real PostgreSQL server for the shared-index tests.
//!
//! `tests/run.sh` starts one (or takes `TEST_POSTGRES_URL` as given) and
//! exports its URL; every test gets a database of its own, named
//! `upslot_t_<random hex>`, which the next `tests/run.sh` drops.

/// The URL of a role that may create databases, from
/// `TEST_POSTGRES_URL`. Panics when it is unset: a missing server is a
/// failure, never a skipped test.
pub fn admin_url() -> String {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "TEST_POSTGRES_URL is not set: run the tests with tests/run.sh (which starts a local \
             PostgreSQL), or set it to postgres://user:password@host:port/database of a role that \
             may create databases"
        ),
    }
}

/// Creates an empty database and returns its URL (the admin URL with the
/// database name replaced).
pub async fn fresh_database() -> String {
    let admin = admin_url();
    let mut id = [0u8; 8];
    getrandom::getrandom(&mut id).expect("random database name");
    let name = format!("upslot_t_{}", hex::encode(id));
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("connect to TEST_POSTGRES_URL");
    let connection = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    drop(client);
    let _ = connection.await;
    with_database(&admin, &name)
}

/// `url` naming the database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &base[..authority_end])
}
