//! The room's votes: the chair opens and closes them, participants cast ballots (one each,
//! see `Part::voter`), and everyone is shown each change; in a meeting from above the
//! ballot goes up to the meeting's home (`remote`). Rows: [`store`].

use super::{Meetings, rfc3339, store};
use crate::bail;
use crate::error::Result;
use serde_json::{Value, json};

impl Meetings {
    pub(super) async fn broadcast_vote(&self, meeting: i64, vote: i64) -> Result<()> {
        let v = vote_json(&store::vote(&self.db, meeting, vote).await?);
        {
            let inner = self.inner.lock().expect("meetings lock");
            if let Some(r) = inner.rooms.get(&meeting) {
                r.broadcast(&json!({"type": "vote", "vote": v}));
            }
        }
        self.vote_to_nodes(meeting, v);
        Ok(())
    }

    /// The chair opens a vote.
    pub async fn vote_open(
        &self,
        meeting: i64,
        pid: u64,
        question: &str,
        options: &[String],
        secret: bool,
    ) -> Result<i64> {
        self.chair_check(meeting, pid)?;
        let question = question.trim();
        if question.is_empty() || question.chars().count() > 500 {
            bail!(InvalidArgument, "question: 1 to 500 characters");
        }
        let options: Vec<String> = options.iter().map(|o| o.trim().to_string()).collect();
        if options.len() < 2 || options.len() > 10 {
            bail!(InvalidArgument, "a vote has 2 to 10 options");
        }
        if options
            .iter()
            .any(|o| o.is_empty() || o.chars().count() > 200)
        {
            bail!(InvalidArgument, "each option: 1 to 200 characters");
        }
        let id =
            store::open_vote(&self.db, meeting, question, &options, secret, self.now_ms()).await?;
        self.broadcast_vote(meeting, id).await?;
        Ok(id)
    }

    /// A participant's ballot (in a meeting from above: sent up to its home, which counts
    /// it).
    pub async fn vote_cast(&self, meeting: i64, pid: u64, vote: i64, option: i64) -> Result<()> {
        let (voter, name, remote) = {
            let inner = self.inner.lock().expect("meetings lock");
            let p = inner.part(meeting, pid)?;
            let remote = inner
                .remote_votes
                .get(&meeting)
                .and_then(|v| v.get(&vote))
                .cloned();
            (p.voter(), p.who.name.clone(), remote)
        };
        if let Some(v) = remote {
            return self.ballot_up(meeting, vote, &v, voter, name, option);
        }
        // The vote must be this meeting's.
        store::vote(&self.db, meeting, vote).await?;
        store::cast(&self.db, vote, &voter, &name, option, self.now_ms()).await?;
        self.broadcast_vote(meeting, vote).await
    }

    pub async fn vote_close(&self, meeting: i64, pid: u64, vote: i64) -> Result<()> {
        self.chair_check(meeting, pid)?;
        if !store::close_vote(&self.db, meeting, vote, self.now_ms()).await? {
            store::vote(&self.db, meeting, vote).await?; // 404 when it does not exist
            bail!(FailedPrecondition, "this vote is closed already");
        }
        self.broadcast_vote(meeting, vote).await
    }
}

/// A vote as the room sees it: while open, how many have voted; once closed, the tally and,
/// unless secret, who chose what.
pub fn vote_json(v: &store::Vote) -> Value {
    let closed = v.closed_ms.is_some();
    json!({
        "id": v.id,
        "question": v.question,
        "options": v.options,
        "secret": v.secret,
        "open": !closed,
        "opened_at": rfc3339(v.opened_ms),
        "closed_at": v.closed_ms.map(rfc3339),
        "cast": v.ballots.len(),
        "voters": v.ballots.iter().map(|b| b.0.clone()).collect::<Vec<_>>(),
        "tally": if closed { json!(v.tally) } else { Value::Null },
        "ballots": if closed && !v.secret {
            json!(v.ballots.iter().map(|(n, o)| json!({"name": n, "option": o})).collect::<Vec<_>>())
        } else {
            Value::Null
        },
    })
}
