//! A pooled connection that keeps the statements it prepared. Sent as
//! text every time, a statement costs a round trip to prepare and a parse
//! and plan on the server, per call; prepared once per connection, a call
//! is one round trip (issuance makes a dozen of them).
//!
//! [`Conn`]'s `execute` and `query*` take SQL text, as the client's do,
//! and run it as this connection's prepared statement (they come before
//! the client's methods, which `Deref` reaches only for what `Conn` does
//! not have: transactions, `query_typed`). Statements are per connection, so a connection the pool replaces takes
//! its statements with it. The cache is bounded: the audit queries build
//! their SQL from the filters given, a few hundred shapes at most.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

use r2d2_postgres::r2d2::ManageConnection;

/// More distinct statements than this on one connection empties its cache.
const MAX_STATEMENTS: usize = 512;

pub struct Conn {
    client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
    /// Set when the connection may be left inside a transaction it could
    /// not end: the pool then drops it rather than lend it out again.
    spoiled: bool,
}

impl Conn {
    /// Marks the connection as not to be reused (see `spoiled`).
    pub fn spoil(&mut self) {
        self.spoiled = true;
    }

    /// `sql` prepared on this connection (once).
    pub fn prepared(&mut self, sql: &str) -> Result<postgres::Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let statement = self.client.prepare(sql)?;
        if self.statements.len() >= MAX_STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

type Params<'a> = &'a [&'a (dyn postgres::types::ToSql + Sync)];

impl Conn {
    pub fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.execute(&statement, params)
    }

    pub fn query(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<postgres::Row>, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.query(&statement, params)
    }

    pub fn query_opt(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<postgres::Row>, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.query_opt(&statement, params)
    }

    pub fn query_one(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<postgres::Row, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.query_one(&statement, params)
    }
}

impl Deref for Conn {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        &self.client
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

/// An r2d2 manager whose connections are [`Conn`]s of the one it wraps.
pub struct Preparing<M>(pub M);

impl<M> ManageConnection for Preparing<M>
where
    M: ManageConnection<Connection = postgres::Client, Error = postgres::Error>,
{
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn {
            client: self.0.connect()?,
            statements: HashMap::new(),
            spoiled: false,
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        self.0.is_valid(&mut conn.client)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.spoiled || self.0.has_broken(&mut conn.client)
    }
}
