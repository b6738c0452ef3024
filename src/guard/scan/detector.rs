//! The kinds of secret and personal data the scanner knows, with the stable ids that
//! configuration and logs use. The enum is the one list: [`Detector::ALL`] is what "every
//! detector" means, and the scanner's rules are looked up by matching on it, so adding a
//! kind without a rule does not compile.

/// One kind of secret (a credential format) or of personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    /// An AWS access key id (`AKIA…`, `ASIA…`).
    AwsAccessKey,
    /// A GitHub token (`ghp_…`, `github_pat_…`).
    GithubToken,
    /// A GitLab personal access token (`glpat-…`).
    GitlabPat,
    /// A Stripe secret or restricted key (`sk_live_…`, `rk_test_…`).
    StripeKey,
    /// A Slack bot, user, app or refresh token (`xoxb-…`, `xapp-…`).
    SlackToken,
    /// A Slack incoming-webhook URL.
    SlackWebhook,
    /// A Google API key (`AIza…`).
    GoogleApiKey,
    /// An OpenAI API key (`sk-…`, `sk-proj-…`).
    OpenAiKey,
    /// An Anthropic API key (`sk-ant-…`).
    AnthropicKey,
    /// A SendGrid API key (`SG.….…`).
    SendgridKey,
    /// An npm access token (`npm_…`).
    NpmToken,
    /// A PEM private key block.
    PrivateKey,
    /// A JSON Web Token.
    Jwt,
    /// The token of an `Authorization: Bearer` credential.
    BearerToken,
    /// A Relay API token (`rly_…`) whose checksum is right.
    RelayToken,
    /// A payment card number (personal data).
    Card,
    /// A US social security number (personal data).
    Ssn,
    /// An email address (personal data).
    Email,
}

impl Detector {
    /// Every detector, in the order that breaks ties between equal findings (the more specific
    /// first: a JWT sent as a bearer token is reported as a JWT).
    pub const ALL: [Detector; 18] = [
        Detector::AwsAccessKey,
        Detector::GithubToken,
        Detector::GitlabPat,
        Detector::StripeKey,
        Detector::SlackToken,
        Detector::SlackWebhook,
        Detector::GoogleApiKey,
        Detector::OpenAiKey,
        Detector::AnthropicKey,
        Detector::SendgridKey,
        Detector::NpmToken,
        Detector::PrivateKey,
        Detector::Jwt,
        Detector::BearerToken,
        Detector::RelayToken,
        Detector::Card,
        Detector::Ssn,
        Detector::Email,
    ];

    /// The id used in configuration and logs.
    pub fn id(self) -> &'static str {
        match self {
            Detector::AwsAccessKey => "aws-access-key",
            Detector::GithubToken => "github-token",
            Detector::GitlabPat => "gitlab-pat",
            Detector::StripeKey => "stripe-key",
            Detector::SlackToken => "slack-token",
            Detector::SlackWebhook => "slack-webhook",
            Detector::GoogleApiKey => "google-api-key",
            Detector::OpenAiKey => "openai-key",
            Detector::AnthropicKey => "anthropic-key",
            Detector::SendgridKey => "sendgrid-key",
            Detector::NpmToken => "npm-token",
            Detector::PrivateKey => "private-key",
            Detector::Jwt => "jwt",
            Detector::BearerToken => "bearer-token",
            Detector::RelayToken => "relay-token",
            Detector::Card => "card",
            Detector::Ssn => "ssn",
            Detector::Email => "email",
        }
    }

    /// The detector whose id is `id`.
    pub fn parse(id: &str) -> Option<Self> {
        Detector::ALL
            .into_iter()
            .find(|detector| detector.id() == id)
    }

    /// Whether this finds personal data rather than a credential (such detectors run only
    /// when named, since an app may carry such data on purpose).
    pub fn is_personal_data(self) -> bool {
        matches!(self, Detector::Card | Detector::Ssn | Detector::Email)
    }
}

impl std::fmt::Display for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_parses_back_to_its_detector() {
        for detector in Detector::ALL {
            assert_eq!(Detector::parse(detector.id()), Some(detector));
        }
        assert_eq!(Detector::parse("aws"), None);
        assert_eq!(Detector::parse("AWS-ACCESS-KEY"), None);
    }

    #[test]
    fn only_cards_ssns_and_emails_are_personal_data() {
        let personal: Vec<&str> = Detector::ALL
            .into_iter()
            .filter(|detector| detector.is_personal_data())
            .map(Detector::id)
            .collect();
        assert_eq!(personal, ["card", "ssn", "email"]);
    }

    #[test]
    fn all_lists_each_detector_once_in_declaration_order() {
        let mut sorted = Detector::ALL;
        sorted.sort();
        assert_eq!(sorted, Detector::ALL);
        assert!(sorted.windows(2).all(|pair| pair[0] != pair[1]));
    }
}
