// Account screen (placeholder): the webaccount part replaces this module.
export function mount(root) {
  const h = document.createElement("h1");
  h.textContent = "Account";
  const p = document.createElement("p");
  p.className = "muted";
  p.textContent = "Your account settings will appear here.";
  const profile = document.createElement("div");
  profile.id = "profile";
  root.append(h, p, profile);
}
