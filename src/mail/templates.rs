//! The mails tessera sends, each as plain text and HTML. The HTML part is a maud template, so
//! every value is escaped; links carry the token as `?token=` on the configured base URL.

use std::time::Duration;

use maud::{DOCTYPE, html};

/// What every mail is signed with and links to.
#[derive(Debug, Clone)]
pub struct Branding {
    pub product: String,
    /// `TESSERA_APP_URL` when set, else the public URL: where the pages behind the links live.
    pub link_base: String,
}

/// One rendered mail, before it has a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Branding {
    /// `{base}/{page}?token={token}`; tokens are URL-safe base64, so nothing needs escaping.
    pub fn link(&self, page: &str, token: &str) -> String {
        format!("{}/{page}?token={token}", self.link_base)
    }

    pub fn verify_email(&self, name: &str, link: &str, valid_for: Duration) -> Rendered {
        let hours = humantime::format_duration(valid_for).to_string();
        self.render(
            format!("Confirm your e-mail address for {}", self.product),
            name,
            &[
                "Please confirm that this is your e-mail address by opening the link below.",
                &format!("The link works once and for {hours}."),
            ],
            Some(("Confirm my address", link)),
            "If you did not create an account, you can ignore this mail.",
        )
    }

    pub fn reset_password(&self, name: &str, link: &str, valid_for: Duration) -> Rendered {
        let minutes = humantime::format_duration(valid_for).to_string();
        self.render(
            format!("Reset your {} password", self.product),
            name,
            &[
                "Someone asked to reset the password of your account. To choose a new one, open the link below.",
                &format!("The link works once and for {minutes}; asking again makes this one stop working."),
            ],
            Some(("Choose a new password", link)),
            "If you did not ask for this, ignore this mail: your password stays as it is.",
        )
    }

    pub fn password_changed(&self, name: &str) -> Rendered {
        self.render(
            format!("Your {} password was changed", self.product),
            name,
            &["The password of your account was just changed, and your other sessions were signed out."],
            None,
            "If this was not you, reset your password at once and tell your administrator.",
        )
    }

    /// After the account's second factors changed; `what` says how, in a sentence.
    pub fn second_factor_changed(&self, name: &str, what: &str) -> Rendered {
        self.render(
            format!("Your {} sign-in changed", self.product),
            name,
            &[what],
            None,
            "If this was not you, reset your password at once and tell your administrator.",
        )
    }

    /// To the old address, once the change has happened (`None`: the address was removed).
    pub fn email_changed(&self, name: &str, new_email: Option<&str>) -> Rendered {
        let what = match new_email {
            Some(new) => format!("The e-mail address of your account was changed to {new}. Mail now goes there."),
            None => "The e-mail address was removed from your account. No more mail goes to it.".to_owned(),
        };
        self.render(
            format!("Your {} e-mail address was changed", self.product),
            name,
            &[&what],
            None,
            "If this was not you, tell your administrator at once.",
        )
    }

    /// To the new address: the link that makes it the account's.
    pub fn confirm_new_email(&self, name: &str, link: &str, valid_for: Duration) -> Rendered {
        let hours = humantime::format_duration(valid_for).to_string();
        self.render(
            format!("Confirm your new e-mail address for {}", self.product),
            name,
            &[
                "You asked to use this address for your account. It becomes your account's address when you open the link below.",
                &format!("The link works once and for {hours}."),
            ],
            Some(("Use this address", link)),
            "If you did not ask for this, ignore this mail: nothing changes.",
        )
    }

    /// To the current address, at once, when a change away from it is asked for.
    pub fn email_change_requested(&self, name: &str, new_email: &str) -> Rendered {
        self.render(
            format!("A change of your {} e-mail address was asked for", self.product),
            name,
            &[
                &format!("Someone signed in to your account asked to change its e-mail address to {new_email}."),
                "Your address stays this one until the link mailed to the new address is followed.",
            ],
            None,
            "If this was not you, change your password at once: whoever asked knows it.",
        )
    }

    /// `name` may be empty: mails to an address that is not verified carry no name, since the
    /// account's owner wrote it and the address's owner may be someone else.
    fn render(
        &self,
        subject: String,
        name: &str,
        paragraphs: &[&str],
        action: Option<(&str, &str)>,
        closing: &str,
    ) -> Rendered {
        let hello = if name.is_empty() { "Hello,".to_owned() } else { format!("Hello {name},") };
        let mut text = format!("{hello}\n\n");
        for paragraph in paragraphs {
            text.push_str(&format!("{paragraph}\n\n"));
        }
        if let Some((_, link)) = action {
            text.push_str(&format!("{link}\n\n"));
        }
        text.push_str(&format!("{closing}\n\n— {}\n", self.product));
        let html = html! {
            (DOCTYPE)
            html {
                body style="font-family:sans-serif;line-height:1.5;max-width:560px" {
                    p { (hello) }
                    @for paragraph in paragraphs { p { (paragraph) } }
                    @if let Some((label, link)) = action {
                        p {
                            a href=(link) style=(BUTTON) { (label) }
                        }
                        p style="font-size:13px;color:#555" { "Or copy this address into your browser:" br; (link) }
                    }
                    p { (closing) }
                    p { "— " (self.product) }
                }
            }
        };
        Rendered { subject, text, html: html.into_string() }
    }
}

const BUTTON: &str =
    "display:inline-block;padding:10px 18px;background:#1f4f8f;color:#fff;text-decoration:none;border-radius:4px";

#[cfg(test)]
mod tests {
    use super::*;

    fn branding() -> Branding {
        Branding { product: "Acme <ID>".into(), link_base: "https://id.example".into() }
    }

    #[test]
    fn links_carry_the_token_on_the_link_base() {
        assert_eq!(branding().link("reset-password", "abc_-1"), "https://id.example/reset-password?token=abc_-1");
    }

    #[test]
    fn user_values_are_escaped_in_html_and_plain_in_text() {
        let mail = branding().verify_email(
            "<script>x</script>",
            "https://id.example/verify-email?token=t",
            Duration::from_secs(86_400),
        );
        assert!(mail.html.contains("&lt;script&gt;x&lt;/script&gt;") && !mail.html.contains("<script>"));
        assert!(mail.text.contains("Hello <script>x</script>,"));
        assert!(mail.text.contains("https://id.example/verify-email?token=t"));
        assert!(mail.html.contains("href=\"https://id.example/verify-email?token=t\""));
        assert!(mail.subject.contains("Acme <ID>") && mail.html.contains("Acme &lt;ID&gt;"));
        assert!(mail.text.contains("1day"), "{}", mail.text);
    }

    #[test]
    fn a_mail_without_a_name_greets_no_one() {
        let mail = branding().password_changed("");
        assert!(mail.text.starts_with("Hello,\n") && mail.html.contains("<p>Hello,</p>"), "{}", mail.text);
    }
}
