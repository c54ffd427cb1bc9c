package account

import (
	"fmt"
	"html"
	"net/url"

	"github.com/fastimage/api/internal/mail"
)

// link builds an absolute link to a page of the web editor from PUBLIC_URL.
// The page shows a button that calls the mutation: opening the link (mail
// scanners do) never consumes the token.
func (s *Service) link(path, token string) string {
	u := *s.cfg.PublicURL
	u.Path = path
	u.RawQuery = url.Values{"token": {token}}.Encode()
	return u.String()
}

func message(kind, to, subject, intro, action, link, outro string) mail.Message {
	text := intro + "\n\n"
	htmlBody := "<p>" + html.EscapeString(intro) + "</p>"
	if link != "" {
		text += action + ":\n" + link + "\n\n"
		htmlBody += fmt.Sprintf(`<p><a href="%s">%s</a></p><p>Or paste this link into your browser:<br>%s</p>`,
			html.EscapeString(link), html.EscapeString(action), html.EscapeString(link))
	}
	text += outro + "\n\n— FastImage\n"
	htmlBody += "<p>" + html.EscapeString(outro) + "</p><p>— FastImage</p>"
	return mail.Message{Kind: kind, To: to, Subject: subject, Text: text, HTML: htmlBody}
}

func (s *Service) verifyEmailMessage(to, token string) mail.Message {
	return message("verify_email", to, "Confirm your email address for FastImage",
		"Welcome to FastImage! Confirm that this is your email address to start creating images.",
		"Confirm my email", s.link("/verify-email", token),
		fmt.Sprintf("The link works for %s. If you did not sign up, ignore this email.", s.cfg.VerifyTokenTTL))
}

func signUpExistingMessage(to string) mail.Message {
	return message("sign_up_existing", to, "Someone tried to sign up with your email",
		"Someone tried to create a FastImage account with this email address, which already has an account.",
		"", "",
		"If it was you, sign in instead, or reset your password if you forgot it. If it was not you, you can ignore this email: nothing changed.")
}

func (s *Service) resetMessage(to, token string) mail.Message {
	return message("password_reset", to, "Reset your FastImage password",
		"We received a request to reset the password of your FastImage account.",
		"Choose a new password", s.link("/reset-password", token),
		"The link works for one hour and only once. If you did not ask for it, ignore this email: your password stays as it is.")
}

func (s *Service) emailChangeMessage(to, token string) mail.Message {
	return message("email_change", to, "Confirm your new email address for FastImage",
		"Confirm that you want to use this address for your FastImage account.",
		"Confirm my new email", s.link("/confirm-email", token),
		fmt.Sprintf("The link works for %s. Until you confirm, your account keeps its current address.", s.cfg.EmailChangeTokenTTL))
}

func emailChangeNoticeMessage(to, newEmail string) mail.Message {
	return message("email_change_notice", to, "Your FastImage email address is being changed",
		fmt.Sprintf("Someone signed in to your FastImage account asked to change its email address to %s. The change applies only when that address confirms it.", newEmail),
		"", "",
		"If this was not you, change your password now and sign out your other sessions.")
}

func passwordChangedMessage(to string) mail.Message {
	return message("password_changed", to, "Your FastImage password was changed",
		"The password of your FastImage account was just changed, and your other sessions were signed out.",
		"", "",
		"If this was not you, reset your password at once.")
}
