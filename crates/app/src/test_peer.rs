//! "Add a test participant": a synthetic peer (moving stamped pattern, tone bursts) that joins
//! the room in-process, so a newcomer sees a working call in seconds with no camera and no one
//! else. It answers private messages, so chat can be tried too.

use crate::app::SYNTHETIC_SIZE;
use hearth_engine::{CallEvent, Command, Engine, EngineConfig, EngineError, EngineEvent};
use std::sync::Arc;

pub const NAME: &str = "Test participant";

#[derive(Debug)]
pub struct TestParticipant {
    engine: Arc<Engine>,
    task: tokio::task::JoinHandle<()>,
}

impl TestParticipant {
    pub async fn start(url: &str, room: &str, password: Option<String>) -> Result<TestParticipant, EngineError> {
        let mut last = None;
        // Another test participant may be there already (someone else added one).
        for n in 1..=5 {
            let name = if n == 1 { NAME.to_string() } else { format!("{NAME} {n}") };
            let mut cfg = EngineConfig::new(url, room, name)
                .synthetic(SYNTHETIC_SIZE.0, SYNTHETIC_SIZE.1, SYNTHETIC_SIZE.2);
            cfg.password = password.clone();
            match Engine::start(cfg).await {
                Ok((engine, events)) => {
                    let engine = Arc::new(engine);
                    let task = tokio::spawn(answer(engine.clone(), events));
                    return Ok(TestParticipant { engine, task });
                }
                Err(EngineError::JoinRefused { code: hearth_proto::ErrorCode::NameTaken, message }) => {
                    last = Some(EngineError::JoinRefused { code: hearth_proto::ErrorCode::NameTaken, message });
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(EngineError::Stopped))
    }

    pub fn peer_id(&self) -> &hearth_proto::PeerId {
        self.engine.peer_id()
    }

    pub async fn leave(self) {
        self.task.abort();
        let _ = self.task.await;
        match Arc::try_unwrap(self.engine) {
            Ok(e) => e.leave().await,
            Err(e) => drop(e),
        }
    }
}

/// Reply to private messages (not to room chat: it should not talk over people).
async fn answer(engine: Arc<Engine>, mut events: tokio::sync::mpsc::UnboundedReceiver<EngineEvent>) {
    let me = engine.peer_id().clone();
    while let Some(ev) = events.recv().await {
        if let EngineEvent::Call(CallEvent::Chat(m)) = ev
            && m.to.as_ref() == Some(&me)
            && m.from != me
        {
            let text: String = m.text.chars().take(200).collect();
            let _ = engine.command(Command::Chat {
                text: format!("I'm a test participant: I got \"{text}\"."),
                to: Some(m.from.clone()),
            });
        }
    }
}
