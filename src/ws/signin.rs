//! `pusher:signin`: a connection proves, with a signature from the app's backend, which user
//! it belongs to. A signed-in connection joins its user's `#server-to-user-<id>` channel, so
//! events the backend sends to the user (`sendToUser`) reach every connection of theirs.
//! With `enable_watchlist_events`, a connection whose `user_data` has a `watchlist` is told
//! which of those users are online, then each time one comes online or goes offline.
//! Refusals are `pusher:error` 4009 and leave the connection open.

use super::connection::{Connection, Ending};
use crate::apps::Via;
use crate::protocol::frames::{self, SigninRequest};
use crate::protocol::signature::user_string_to_sign;
use crate::protocol::{ChannelName, UserData};

/// The code of every refused sign-in (the connection stays open).
const SIGNIN_REFUSED: u16 = 4009;
/// The code that says a watchlist was cut to its first 100 ids.
const WATCHLIST_TRUNCATED: u16 = 4302;

impl Connection {
    /// Handles `pusher:signin`.
    pub(super) async fn signin(&mut self, request: SigninRequest) -> Result<(), Ending> {
        let signed = user_string_to_sign(&self.socket_id.to_string(), &request.user_data);
        if let Err(error) = self.check_client_auth(Some(&request.auth), &signed, Via::SignIn) {
            return self.refuse_signin(&format!("Sign-in refused: {error}"));
        }
        let user = match UserData::parse(&request.user_data) {
            Ok(user) => user,
            Err(error) => return self.refuse_signin(&format!("Sign-in refused: {error}")),
        };
        if let Some(current) = self.user.as_deref().filter(|current| *current != user.id) {
            let message = format!("Sign-in refused: already signed in as user {current}");
            return self.refuse_signin(&message);
        }
        let channel = match ChannelName::server_to_user(&user.id) {
            Ok(channel) => channel,
            Err(error) => return self.refuse_signin(&format!("Sign-in refused: user id: {error}")),
        };
        if !self.subscriptions.contains_key(&channel) {
            let subscribed = self
                .state
                .adapter
                .subscribe(&self.app, &channel, self.socket_id, self.outbox(), None)
                .await;
            if let Err(error) = subscribed {
                tracing::warn!(app = %self.app.id, %error, "sign-in refused: user channel");
                return self.refuse_signin("Sign-in refused: temporarily unavailable");
            }
            self.subscriptions.insert(channel, None);
        }
        let first_signin = self.user.is_none();
        if first_signin {
            let signed_in = self
                .state
                .adapter
                .user_signed_in(&self.app.id, &user.id, self.socket_id, self.outbox())
                .await;
            if let Err(error) = signed_in {
                tracing::warn!(app = %self.app.id, %error, "sign-in not recorded");
            }
        }
        self.user = Some(user.id);
        self.send(frames::signin_success(&request.user_data))?;
        if user.watchlist_truncated {
            let message = "The watchlist was cut to its first 100 user ids";
            self.send_error(Some(WATCHLIST_TRUNCATED), message)?;
        }
        if first_signin && self.app.enable_watchlist_events && !user.watchlist.is_empty() {
            self.start_watching(user.watchlist).await;
        }
        Ok(())
    }

    /// Registers the watchlist; who in it is online now is queued first.
    async fn start_watching(&mut self, watchlist: Vec<String>) {
        let watched = self
            .state
            .adapter
            .watch_users(&self.app.id, self.socket_id, self.outbox(), &watchlist)
            .await;
        if let Err(error) = watched {
            tracing::warn!(app = %self.app.id, %error, "watchlist not registered");
        }
        self.watching = watchlist;
    }

    fn refuse_signin(&self, message: &str) -> Result<(), Ending> {
        self.send_error(Some(SIGNIN_REFUSED), message)
    }
}
