// The pages behind the links in the platform's emails. Opening a link changes nothing (mail
// scanners fetch links): the person confirms, and the page POSTs the link's token to the REST API
// of this same gateway.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);

const pages = {
  "/verify-email": {
    title: "Verify your email address",
    intro: "Confirm that this address is yours.",
    submit: "Verify my email",
    run: () => post("/v1/auth/verify-email", { token }),
    done: "Your email address is verified. You can close this page.",
  },
  "/reset-password": {
    title: "Choose a new password",
    intro: "Every other session of your account is signed out when the password changes.",
    submit: "Set the new password",
    newPassword: true,
    run: () => post("/v1/auth/password-reset/confirm", { token, newPassword: $("new").value }),
    done: "Your password is changed. Sign in with the new one.",
  },
  "/invitations/accept": {
    title: "Join the team",
    intro: "Sign in with the account that should join (register first if you have none).",
    submit: "Sign in and accept",
    credentials: true,
    run: async () => {
      const tokens = await post("/v1/auth/login", { email: $("email").value, password: $("password").value });
      return post("/v1/invitations:accept", { token }, tokens.accessToken);
    },
    done: "You have joined. Switch to the tenant in the app to start.",
  },
};

async function post(path, body, bearer) {
  const headers = { "content-type": "application/json" };
  if (bearer) headers.authorization = "Bearer " + bearer;
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    // RFC 7807 problem from the gateway: the platform code and, when a field is at fault, its name.
    const field = (answer.violations || []).map((v) => v.field + ": " + v.description).join("; ");
    throw new Error((answer.detail || answer.title || response.statusText) + (field ? " (" + field + ")" : ""));
  }
  return answer;
}

const page = pages[location.pathname];
if (!page) {
  $("intro").textContent = "This link is not one this page knows.";
} else if (!token) {
  $("title").textContent = page.title;
  $("intro").textContent = "The link has no token: open it again from the email, whole.";
} else {
  document.title = page.title;
  $("title").textContent = page.title;
  $("intro").textContent = page.intro;
  $("submit").textContent = page.submit;
  $("credentials").hidden = !page.credentials;
  $("new-password").hidden = !page.newPassword;
  $("form").hidden = false;
  $("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("submit").disabled = true;
    $("result").textContent = "…";
    try {
      await page.run();
      $("result").textContent = page.done;
      $("form").hidden = true;
    } catch (error) {
      $("result").textContent = error.message;
      $("submit").disabled = false;
    }
  });
}
