//! A registry login, ready for a docker config. Only the password is secret.

use secrecy::SecretString;

pub struct Login {
    pub username: String,
    pub password: SecretString,
    pub email: Option<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"(sensitive value)")
            .finish()
    }
}
