//! The second factor's code steps and the console's sessions on PostgreSQL. A code step is
//! accepted by one conditional upsert, so two daemons given the same code at once accept it
//! once; a session is replaced only if its stored text is still what the caller read.

use tokio_postgres::types::Json;

use super::{Db, PgStore};
use crate::domain::records::SessionRecord;
use crate::store::StoreError;
use crate::store::port::{ConsoleStore, SessionFilter};

#[async_trait::async_trait]
impl ConsoleStore for PgStore {
    async fn accept_code_step(&self, key_id: &str, step: u64) -> Result<bool, StoreError> {
        let step = i64::try_from(step)
            .map_err(|_| StoreError::Corrupt(format!("code step {step} of {key_id}")))?;
        let client = self.client().await?;
        let accepted = client
            .exec(
                "INSERT INTO code_steps (api_key_id, step) VALUES ($1, $2)
                 ON CONFLICT (api_key_id) DO UPDATE SET step = excluded.step
                  WHERE code_steps.step < excluded.step",
                &[&key_id, &step],
            )
            .await?;
        Ok(accepted == 1)
    }

    async fn put_session(
        &self,
        id_hash: &[u8; 32],
        session: &SessionRecord,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO console_sessions (id_hash, record) VALUES ($1, $2)
                 ON CONFLICT (id_hash) DO UPDATE SET record = excluded.record",
                &[&&id_hash[..], &Json(session)],
            )
            .await?;
        Ok(())
    }

    /// `json` keeps the text it was given, so the stored text is compared with the text of
    /// `before` (records serialize the same way every time).
    async fn touch_session(
        &self,
        id_hash: &[u8; 32],
        before: &SessionRecord,
        after: &SessionRecord,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let before = serde_json::to_string(before).expect("records always serialize");
        let touched = client
            .exec(
                "UPDATE console_sessions SET record = $3 WHERE id_hash = $1 AND record::text = $2",
                &[&&id_hash[..], &before, &Json(after)],
            )
            .await?;
        Ok(touched == 1)
    }

    async fn session(&self, id_hash: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
        let client = self.client().await?;
        let Some(row) = client
            .row_opt(
                "SELECT record::text FROM console_sessions WHERE id_hash = $1",
                &[&&id_hash[..]],
            )
            .await?
        else {
            return Ok(None);
        };
        serde_json::from_str(row.get(0))
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("console session: {e}")))
    }

    async fn remove_session(&self, id_hash: &[u8; 32]) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .exec(
                "DELETE FROM console_sessions WHERE id_hash = $1",
                &[&&id_hash[..]],
            )
            .await?;
        Ok(())
    }

    /// A session touched after it was read is not removed: it is not over.
    async fn remove_sessions(&self, ended: SessionFilter<'_>) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows("SELECT id_hash, record::text FROM console_sessions", &[])
            .await?;
        let mut removed = 0;
        for row in rows {
            let id_hash: Vec<u8> = row.get(0);
            let text: String = row.get(1);
            // An unreadable session is as good as ended.
            let over = serde_json::from_str::<SessionRecord>(&text).map_or(true, |s| ended(&s));
            if over {
                removed += client
                    .exec(
                        "DELETE FROM console_sessions WHERE id_hash = $1 AND record::text = $2",
                        &[&id_hash, &text],
                    )
                    .await? as usize;
            }
        }
        Ok(removed)
    }
}
