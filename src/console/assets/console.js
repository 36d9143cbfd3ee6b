// metrics-governor console: refreshes the server-rendered page in place while it is open, and sends
// rollbacks with the bearer token. The page reads fully without this script.
;(() => {
  const REFRESH_MS = 5000
  const $ = (id) => document.getElementById(id)
  /** The refresh running or last run: a refresh asked for meanwhile starts after it. */
  let last = Promise.resolve()

  /** What to give focus back to after the main content is replaced. */
  const focusKey = () => {
    const el = document.activeElement
    if (!el || !$("main").contains(el)) return undefined
    const details = el.closest("details[data-key]")
    if (el.tagName === "SUMMARY" && details) return { summary: details.dataset.key }
    const form = el.closest("form")
    if (form) return { form: form.getAttribute("action") }
    if (el.id) return { id: el.id }
    return undefined
  }

  const restoreFocus = (key) => {
    if (!key) return
    let el = null
    if (key.summary) el = document.querySelector(`details[data-key="${key.summary}"] > summary`)
    else if (key.form) el = document.querySelector(`form[action="${CSS.escape(key.form)}"] button`)
    else if (key.id) el = $(key.id)
    if (el) el.focus({ preventScroll: true })
  }

  const fetchPage = async () => {
    const active = document.activeElement
    // Never pull the page away from someone typing.
    if (active && active.tagName === "INPUT" && active.type === "password") return
    try {
      const res = await fetch("/", { cache: "no-store" })
      if (!res.ok) throw new Error(`HTTP ${res.status}`)
      const doc = new DOMParser().parseFromString(await res.text(), "text/html")
      const next = doc.getElementById("main")
      if (!next) return
      const open = new Set(
        Array.from(document.querySelectorAll("details[open][data-key]"), (d) => d.dataset.key),
      )
      const token = $("token") ? $("token").value : ""
      const message = $("action-result") ? $("action-result").innerHTML : ""
      const key = focusKey()
      $("main").replaceChildren(...Array.from(next.childNodes, (n) => document.importNode(n, true)))
      for (const d of document.querySelectorAll("details[data-key]")) {
        if (open.has(d.dataset.key)) d.open = true
      }
      if ($("token")) $("token").value = token
      if ($("action-result")) $("action-result").innerHTML = message
      document.title = doc.title
      restoreFocus(key)
      $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`
    } catch (e) {
      $("updated").textContent = `refresh failed: ${e.message}`
    }
  }

  /**
   * Fetches the page and puts its content in place. One at a time; a refresh asked for while one
   * runs (a rollback's, during the periodic one) runs after it, so what it shows is fetched after
   * the ask, never dropped.
   */
  const refresh = () => {
    last = last.then(fetchPage, fetchPage)
    return last
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target
    if (!form.classList?.contains("rollback")) return
    event.preventDefault()
    const label = form.querySelector("button").textContent
    if (!window.confirm(`${label}? Its content becomes active as a new version.`)) return
    const headers = {}
    const token = $("token") ? $("token").value.trim() : ""
    if (token !== "") headers.Authorization = `Bearer ${token}`
    const out = $("action-result")
    try {
      const res = await fetch(form.getAttribute("action"), { method: "POST", headers })
      const body = await res.json()
      out.textContent =
        res.ok && body.status !== "rejected"
          ? `Rollback ${body.status}: version ${body.version} is active.`
          : `Rollback refused (HTTP ${res.status}): ${body.error ? body.error.message : body.status}`
    } catch (e) {
      out.textContent = `Rollback failed: ${e.message}`
    }
    await refresh()
    out.focus()
  })

  $("refresh").addEventListener("click", () => refresh())
  setInterval(() => {
    if ($("auto").checked && !document.hidden) refresh()
  }, REFRESH_MS)
})()
