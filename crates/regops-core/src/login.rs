//! A registry login, ready for a docker config. Only the password is secret.

use secrecy::SecretString;

pub struct Login {
    pub username: String,
    pub password: SecretString,
    pub email: Option<String>,
    /// A short hash of the credential's age ciphertext (`age:1a2b3c4d`), which is public: it
    /// names which encrypted value a plan writes without saying anything about the plaintext.
    /// `None` for passwords from the environment or a file.
    pub source_digest: Option<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"(sensitive value)")
            .finish()
    }
}
