// The tikaconf web console: roots, one configuration as a tree and as JSON,
// edits committed with `If-Match` on the head they started from, live changes
// from the event stream, a conflict panel when another writer was first, and
// the history of changes with a rollback to any version kept.
//
// It is a client of the public HTTP API (docs/API.md) and nothing else: every
// read and write below is a documented request. Plain ES modules, no build
// step; the editor is CodeMirror 6, vendored as one bundle (vendor/README.md).

import * as cm from "./vendor/codemirror.min.js";
import {
    applyPatch, childPointer, clone, diff, getAt, overlaps, pretty, touched,
} from "./json.js";

const $ = (id) => document.getElementById(id);
/** How long a changed path stays highlighted. */
const HIGHLIGHT_MS = 6000;
const PAGE = 50;

// ---------------------------------------------------------------- the API --

/** The bearer token, kept for this tab only (never in localStorage). */
let token = sessionStorage.getItem("tikaconf-token");
/** The open token prompt, shared by every request that got 401 meanwhile. */
let tokenPrompt = null;

/** An API error: the status and the RFC 9457 problem (or null). */
class ApiError extends Error {
    constructor(status, problem) {
        super(problem?.detail ?? `HTTP ${status}`);
        this.status = status;
        this.problem = problem;
    }
}

/** Asks for the token (the server answered 401); resolves once one is given. */
function askToken() {
    tokenPrompt ??= new Promise((resolve) => {
        const dialog = $("token-dialog");
        const input = $("token");
        input.value = "";
        dialog.addEventListener(
            "close",
            () => {
                token = input.value.trim() || null;
                if (token) sessionStorage.setItem("tikaconf-token", token);
                tokenPrompt = null;
                resolve();
            },
            { once: true },
        );
        dialog.showModal();
        input.focus();
    });
    return tokenPrompt;
}

function authHeaders(extra = {}) {
    return token ? { ...extra, authorization: `Bearer ${token}` } : extra;
}

/** A head hash from an `ETag` value. */
const unquote = (tag) => (tag ?? "").replace(/^W\//, "").replaceAll('"', "");

/**
 * One API request. `body` is sent as JSON (with `type`, by default
 * application/json); `ifMatch` is a head. Resolves to {status, data, head,
 * height}; rejects with an ApiError (or a TypeError when the server is
 * unreachable). A 401 prompts for the token and retries.
 */
async function api(method, path, { body, type = "application/json", ifMatch } = {}) {
    for (;;) {
        const headers = authHeaders(body === undefined ? {} : { "content-type": type });
        if (ifMatch) headers["if-match"] = `"${ifMatch}"`;
        const response = await fetch(path, {
            method,
            headers,
            body: body === undefined ? undefined : JSON.stringify(body),
        });
        if (response.status === 401) {
            await askToken();
            continue;
        }
        const text = await response.text();
        let data = null;
        try {
            data = text ? JSON.parse(text) : null;
        } catch {
            data = { detail: text };
        }
        if (!response.ok) throw new ApiError(response.status, data);
        return {
            status: response.status,
            data,
            head: unquote(response.headers.get("etag")),
            height: Number(response.headers.get("tikaconf-height")),
        };
    }
}

/**
 * A Server-Sent Events stream read with `fetch`, because `EventSource`
 * cannot send the `Authorization` header. Parses `event:`, `id:` and
 * `data:` lines (a blank line ends an event, `:` lines are comments), and
 * after a drop reconnects with `Last-Event-ID` set to the last id seen, as
 * `EventSource` would, backing off up to 10 s.
 */
class EventStream {
    constructor(path, lastId, onEvent, onState) {
        this.path = path;
        this.lastId = lastId;
        this.onEvent = onEvent;
        this.onState = onState;
        this.abort = new AbortController();
        this.run();
    }

    close() {
        this.abort.abort();
    }

    async run() {
        let delay = 250;
        while (!this.abort.signal.aborted) {
            try {
                const headers = authHeaders(this.lastId ? { "last-event-id": this.lastId } : {});
                const response = await fetch(this.path, { headers, signal: this.abort.signal });
                if (response.status === 401) {
                    await askToken();
                    continue;
                }
                if (!response.ok) throw new ApiError(response.status, null);
                this.onState("live");
                delay = 250;
                await this.read(response.body);
            } catch (e) {
                if (this.abort.signal.aborted) return;
                console.warn("event stream:", e);
            }
            this.onState("reconnecting");
            await new Promise((r) => setTimeout(r, delay));
            delay = Math.min(delay * 2, 10000);
        }
    }

    async read(body) {
        const reader = body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        let event = { type: "message", data: [], id: null };
        for (;;) {
            const { value, done } = await reader.read();
            if (done) return;
            buffer += value;
            let end;
            while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
                const line = buffer.slice(0, end);
                buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
                if (line === "") {
                    if (event.id !== null) this.lastId = event.id;
                    if (event.data.length) this.onEvent(event.type, JSON.parse(event.data.join("\n")));
                    event = { type: "message", data: [], id: null };
                    continue;
                }
                if (line.startsWith(":")) continue;
                const colon = line.indexOf(":");
                const field = colon < 0 ? line : line.slice(0, colon);
                const v = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
                if (field === "event") event.type = v;
                else if (field === "data") event.data.push(v);
                else if (field === "id") event.id = v;
            }
        }
    }
}

// ------------------------------------------------------------------ state --

const state = {
    /** Roots loaded so far, in the server's order. */
    roots: [],
    /** The cursor of the next page, or null. */
    next: null,
    /** The open configuration (see `openConfig`), or null. */
    open: null,
};

const short = (hash) => (hash ? hash.slice(0, 10) : "");
const configPath = (root) => `/v1/configs/${encodeURIComponent(root)}`;

/** A root's display name and platform, from its connection info. */
function describe(root) {
    const c = root.connection;
    if (c && typeof c === "object") {
        const name = c.channel ?? c.name ?? c.id ?? JSON.stringify(c);
        return { name: String(name), platform: c.platform ?? "" };
    }
    return { name: short(root.root), platform: "" };
}

// ------------------------------------------------------------------ roots --

async function loadRoots({ more = false } = {}) {
    const platform = $("platform").value;
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (platform) params.set("platform", platform);
    if (more && state.next) params.set("cursor", state.next);
    try {
        const { data } = await api("GET", `/v1/roots?${params}`);
        state.roots = more ? state.roots.concat(data.roots) : data.roots;
        state.next = data.next;
        $("roots-empty").hidden = true;
        for (const r of data.roots) {
            const p = describe(r).platform;
            if (p && ![...$("platform").options].some((o) => o.value === p)) {
                $("platform").add(new Option(p, p));
            }
        }
    } catch (e) {
        state.roots = [];
        state.next = null;
        const why = e.status === 501
            ? "This server has no store to list roots from (it runs with --no-storage). Add a root to open it."
            : `Cannot list roots: ${e.message}`;
        showEmpty(why);
    }
    renderRoots();
}

function showEmpty(text) {
    $("roots-empty").textContent = text;
    $("roots-empty").hidden = false;
}

function renderRoots() {
    const query = $("search").value.trim().toLowerCase();
    const list = $("roots");
    const shown = state.roots.filter((r) => {
        if (!query) return true;
        const { name, platform } = describe(r);
        return [name, platform, r.root, r.head].some((s) => s.toLowerCase().includes(query));
    });
    list.replaceChildren(
        ...shown.map((r) => {
            const { name, platform } = describe(r);
            const li = document.createElement("li");
            const a = document.createElement("a");
            a.className = "root-item";
            a.href = `#/r/${r.root}`;
            a.dataset.root = r.root;
            if (state.open?.root === r.root) a.setAttribute("aria-current", "page");
            a.innerHTML = `<span class="name"></span><span class="badge"></span><span class="sub"></span>`;
            a.querySelector(".name").textContent = name;
            a.querySelector(".badge").textContent = platform;
            a.querySelector(".badge").hidden = !platform;
            a.querySelector(".sub").textContent = `${short(r.root)} · height ${r.height}`;
            li.append(a);
            return li;
        }),
    );
    if ($("roots-empty").hidden || state.roots.length) {
        if (!state.roots.length) showEmpty("No roots yet. Add one: a platform and a channel.");
        else if (!shown.length) showEmpty(`No root matches “${query}” among the ${state.roots.length} loaded.`);
        else $("roots-empty").hidden = true;
    }
    $("roots-count").textContent = state.roots.length
        ? `${shown.length === state.roots.length ? "" : `${shown.length} of `}${state.roots.length}${state.next ? "+" : ""} roots`
        : "";
    $("more").hidden = !state.next;
}

/** Registers a root from the add form, then opens it. */
async function addRoot(event) {
    event.preventDefault();
    const platform = $("add-platform").value.trim();
    let channel = $("add-channel").value.trim();
    if (platform === "twitch" && channel && !channel.startsWith("#")) channel = `#${channel}`;
    const error = $("add-error");
    error.hidden = true;
    try {
        const { data } = await api("POST", "/v1/roots", { body: { platform, channel } });
        $("add-root").hidden = true;
        $("add-channel").value = "";
        // The focus goes to the configuration about to open (its tree).
        document.activeElement?.blur();
        await loadRoots();
        if (!state.roots.some((r) => r.root === data.root)) {
            state.roots.unshift({ ...data, connection: { platform, channel } });
            renderRoots();
        }
        location.hash = `#/r/${data.root}`;
    } catch (e) {
        error.textContent = e.message;
        error.hidden = false;
    }
}

// ---------------------------------------------------------- configuration --

/**
 * Opens one configuration: reads it, then follows its event stream from
 * that head on. `open.live` is what the server has (kept current by the
 * stream); an edit remembers the `base` it started from.
 */
async function openConfig(root) {
    closeConfig();
    const known = state.roots.find((r) => r.root === root) ?? { root, connection: null };
    const open = {
        root,
        live: null,
        /** The JSON editor's base: {head, height, document, text}, or null. */
        editorBase: null,
        /** The open inline tree editor, or null. */
        inline: null,
        /** Collapsed tree nodes, by pointer. */
        collapsed: new Set(),
        /** Heads this page committed (not highlighted as someone else's). */
        own: new Set(),
        /** Pointer -> when its highlight ends. */
        highlights: new Map(),
        conflict: null,
        /** The history tab's list (see `historyState`). */
        history: historyState(),
        stream: null,
        /** A write of ours is in flight: events wait in `queue` for its
         * answer, so that its own change is known as ours (not highlighted
         * as someone else's) whichever arrives first. */
        inflight: false,
        queue: [],
    };
    state.open = open;
    const { name, platform } = describe(known);
    $("config-name").textContent = platform ? `${name}` : name;
    $("config-name").dataset.platform = platform;
    $("config-root").textContent = short(root);
    $("config-root").title = `Root ${root}`;
    $("placeholder").hidden = true;
    $("config").hidden = false;
    $("app").dataset.view = "config";
    renderRoots();
    try {
        const got = await api("GET", configPath(root));
        if (state.open !== open) return;
        open.live = { head: got.head, height: got.height, document: got.data };
    } catch (e) {
        if (state.open !== open) return;
        notice(e.status === 404 ? "No such root: add it first." : `Cannot read it: ${e.message}`, "error");
        return;
    }
    resetEditor();
    render();
    // Rows are kept by key across renders: none from the last configuration.
    $("history").replaceChildren();
    renderHistory();
    if (!$("history-view").hidden) loadHistory();
    open.stream = new EventStream(
        `${configPath(root)}/events`,
        open.live.head,
        (type, data) => {
            if (state.open !== open) return;
            if (open.inflight) open.queue.push([type, data]);
            else onEvent(type, data);
        },
        (s) => state.open === open && setLive(s),
    );
    focusTree();
}

function closeConfig() {
    state.open?.stream?.close();
    clearTimeout(state.open?.history.timer);
    if ($("rollback-dialog").open) $("rollback-dialog").close();
    state.open = null;
    setLive("idle");
    hideConflict();
    notice(null);
}

function setLive(s) {
    const el = $("live");
    el.dataset.state = s;
    el.textContent = { live: "live", reconnecting: "reconnecting…", idle: "" }[s] ?? s;
}

/** Runs `write` (one request of ours and what follows its answer), then the
 * events that came meanwhile. */
async function inflight(write) {
    const open = state.open;
    open.inflight = true;
    try {
        return await write();
    } finally {
        open.inflight = false;
        for (const [type, data] of open.queue.splice(0)) if (state.open === open) onEvent(type, data);
    }
}

/** An event from the stream: a snapshot replaces, a change applies its ops. */
function onEvent(type, data) {
    const open = state.open;
    const before = open.live;
    let changed = [];
    if (type === "snapshot") {
        changed = diff(before?.document, data.document).flatMap(touched);
        open.live = { head: data.head, height: data.height, document: data.document };
    } else if (type === "change") {
        try {
            open.live = { head: data.head, height: data.height, document: applyPatch(before.document, data.ops) };
        } catch (e) {
            // Out of step (it cannot happen while the stream is in order):
            // read the document again.
            console.warn("re-reading after", e);
            api("GET", configPath(open.root)).then((got) => {
                open.live = { head: got.head, height: got.height, document: got.data };
                render();
            });
            return;
        }
        changed = data.ops.flatMap((op) => (op.op === "remove" ? [parentOf(op.path)] : touched(op)));
    } else return;
    if (!open.own.has(data.head)) {
        const until = Date.now() + HIGHLIGHT_MS;
        for (const p of changed) open.highlights.set(p, until);
        setTimeout(() => state.open === open && renderHighlights(), HIGHLIGHT_MS + 50);
    }
    const root = state.roots.find((r) => r.root === open.root);
    if (root) Object.assign(root, { head: data.head, height: data.height });
    if (!open.own.has(data.head) && changed.length) {
        notice(`Changed by someone else: ${changed.map(label).join(", ")} (head ${short(data.head)})`, "live");
    }
    syncEditor(changed);
    render();
    historyHeadMoved();
}

const parentOf = (pointer) => pointer.slice(0, Math.max(0, pointer.lastIndexOf("/")));
const label = (pointer) => pointer || "(whole document)";

/** The header, the tree, the state of the buttons. */
function render() {
    const open = state.open;
    if (!open?.live) return;
    $("config-head").textContent = short(open.live.head);
    $("config-head").title = `Head ${open.live.head}`;
    $("config-head").dataset.head = open.live.head;
    $("config-height").textContent = open.live.height;
    if (open.inline) {
        // Re-rendering would drop the value being edited: the tree catches
        // up once that edit is committed or cancelled.
        open.treeStale = true;
    } else {
        renderTree();
    }
    renderDirty();
    renderRoots();
}

// ------------------------------------------------------------------- tree --

function renderTree() {
    const open = state.open;
    const tree = $("tree");
    const focused = document.activeElement?.closest?.("#tree li")?.dataset.pointer;
    open.treeStale = false;
    tree.replaceChildren(treeItem(open.live.document, "", null, 1));
    renderHighlights();
    const again = focused !== undefined && rowOf(focused);
    if (again) again.focus();
    else tree.querySelector("li")?.setAttribute("tabindex", "0");
}

/** One node: its row (key, value or summary, actions) and its children. */
function treeItem(value, pointer, key, level) {
    const li = document.createElement("li");
    li.setAttribute("role", "treeitem");
    li.setAttribute("aria-level", level);
    li.dataset.pointer = pointer;
    li.tabIndex = -1;
    const container = value !== null && typeof value === "object";
    const row = document.createElement("div");
    row.className = "row";
    const twisty = document.createElement("span");
    twisty.className = "twisty";
    const k = document.createElement("span");
    k.className = key === null ? "key root-key" : "key";
    k.textContent = key === null ? "document" : Array.isArray(getAt(state.open.live.document, parentOf(pointer))) ? `${key}` : key;
    const v = document.createElement("span");
    v.className = "value";
    if (container) {
        const n = Array.isArray(value) ? value.length : Object.keys(value).length;
        v.textContent = Array.isArray(value) ? `[ ${n} item${n === 1 ? "" : "s"} ]` : `{ ${n} key${n === 1 ? "" : "s"} }`;
        v.classList.add("summary");
        li.setAttribute("aria-expanded", String(!state.open.collapsed.has(pointer)));
    } else {
        v.textContent = JSON.stringify(value);
        v.classList.add(`t-${value === null ? "null" : typeof value}`);
    }
    const actions = document.createElement("span");
    actions.className = "actions";
    const button = (text, title, act) => {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "ghost icon";
        b.textContent = text;
        b.title = title;
        b.tabIndex = -1;
        b.dataset.act = act;
        return b;
    };
    if (container) actions.append(button("+", "Add a member (+)", "add"));
    actions.append(button("✎", "Edit (Enter)", "edit"));
    if (pointer !== "") actions.append(button("×", "Remove (Delete)", "remove"));
    row.append(twisty, k, v, actions);
    li.append(row);
    li.setAttribute("aria-label", `${key === null ? "document" : key}: ${v.textContent}`);
    if (container && !state.open.collapsed.has(pointer)) {
        const group = document.createElement("ul");
        group.setAttribute("role", "group");
        const entries = Array.isArray(value) ? value.map((x, i) => [String(i), x]) : Object.entries(value);
        for (const [ck, cv] of entries) group.append(treeItem(cv, childPointer(pointer, ck), ck, level + 1));
        if (!entries.length) {
            const empty = document.createElement("li");
            empty.className = "empty-node muted";
            empty.textContent = Array.isArray(value) ? "empty array" : "empty object: press + to add a key";
            group.append(empty);
        }
        li.append(group);
    }
    return li;
}

const rowOf = (pointer) => [...$("tree").querySelectorAll("li[data-pointer]")].find((li) => li.dataset.pointer === pointer);

/** Marks the rows of changed paths (or their nearest shown ancestor). */
function renderHighlights() {
    const open = state.open;
    const now = Date.now();
    for (const li of $("tree").querySelectorAll("li.changed")) li.classList.remove("changed");
    for (const [pointer, until] of open.highlights) {
        if (until <= now) {
            open.highlights.delete(pointer);
            continue;
        }
        let p = pointer;
        let li = rowOf(p);
        while (!li && p !== "") {
            p = parentOf(p);
            li = rowOf(p);
        }
        if (!li) continue;
        li.classList.add("changed");
        // A re-render makes new rows: the fade goes on where it was.
        li.querySelector(".row").style.animationDelay = `${until - now - HIGHLIGHT_MS}ms`;
    }
}

function focusTree() {
    const li = $("tree").querySelector("li[tabindex='0']") ?? $("tree").querySelector("li[data-pointer]");
    if (li && !$("tree-view").hidden && !isTyping()) li.focus({ preventScroll: true });
}

function moveFocus(li) {
    if (!li) return;
    for (const other of $("tree").querySelectorAll("li[tabindex='0']")) other.tabIndex = -1;
    li.tabIndex = 0;
    li.focus();
}

/** Arrows, Enter, +, Delete in the tree (the ARIA tree pattern). */
function onTreeKey(e) {
    const li = e.target.closest("li[data-pointer]");
    if (!li || e.target !== li || state.open?.inline) return;
    const rows = [...$("tree").querySelectorAll("li[data-pointer]")];
    const i = rows.indexOf(li);
    const pointer = li.dataset.pointer;
    const expandable = li.hasAttribute("aria-expanded");
    const expanded = li.getAttribute("aria-expanded") === "true";
    const keys = {
        ArrowDown: () => moveFocus(rows[i + 1]),
        ArrowUp: () => moveFocus(rows[i - 1]),
        Home: () => moveFocus(rows[0]),
        End: () => moveFocus(rows[rows.length - 1]),
        ArrowRight: () => (expandable && !expanded ? toggle(pointer) : moveFocus(rows[i + 1])),
        ArrowLeft: () => (expandable && expanded ? toggle(pointer) : pointer !== "" && moveFocus(rowOf(parentOf(pointer)))),
        Enter: () => startEdit(pointer),
        F2: () => startEdit(pointer),
        "+": () => expandable && startAdd(pointer),
        Delete: () => pointer !== "" && removeAt(pointer),
    };
    const act = keys[e.key];
    if (act) {
        e.preventDefault();
        act();
    }
}

function onTreeClick(e) {
    const li = e.target.closest("li[data-pointer]");
    if (!li || e.target.closest(".inline")) return;
    const pointer = li.dataset.pointer;
    const act = e.target.closest("button")?.dataset.act;
    if (act === "add") return startAdd(pointer);
    if (act === "edit") return startEdit(pointer);
    if (act === "remove") return removeAt(pointer);
    if (e.target.closest(".twisty") && li.hasAttribute("aria-expanded")) return toggle(pointer);
    moveFocus(li);
}

function toggle(pointer) {
    const c = state.open.collapsed;
    if (c.has(pointer)) c.delete(pointer);
    else c.add(pointer);
    renderTree();
    moveFocus(rowOf(pointer));
}

// ---------------------------------------------------- editing in the tree --

/** A small JSON editor (highlighting, validation) for one value. */
function valueEditor(parent, text, { onSubmit, onCancel }) {
    const submit = () => (onSubmit(), true);
    const view = new cm.EditorView({
        parent,
        state: cm.EditorState.create({
            doc: text,
            extensions: [
                cm.keymap.of([
                    { key: "Enter", run: submit },
                    { key: "Mod-Enter", run: submit },
                    { key: "Mod-s", run: submit, preventDefault: true },
                    { key: "Escape", run: () => (onCancel(), true) },
                    { key: "Shift-Enter", run: cm.defaultKeymap.find((k) => k.key === "Enter").run },
                ]),
                basics(),
                cm.EditorView.contentAttributes.of({ "aria-label": "Value (JSON)" }),
            ],
        }),
    });
    view.dispatch({ selection: { anchor: 0, head: text.length } });
    return view;
}

/** Opens the inline editor on the value at `pointer`. */
function startEdit(pointer) {
    const open = state.open;
    cancelInline();
    const li = rowOf(pointer);
    const value = getAt(open.live.document, pointer);
    const box = document.createElement("div");
    box.className = "inline";
    li.querySelector(".row").after(box);
    li.classList.add("editing");
    const base = clone(open.live);
    const text = value !== null && typeof value === "object" ? JSON.stringify(value, null, 2) : JSON.stringify(value);
    const error = inlineError(box);
    const view = valueEditor(box, text, {
        onSubmit: () => {
            const parsed = parseJson(view.state.doc.toString());
            if (!parsed.ok) return (error.textContent = parsed.error);
            closeInline();
            const parentIsArray = Array.isArray(getAt(base.document, parentOf(pointer)));
            const op = pointer === "" || parentIsArray ? "replace" : "add";
            submitOps([{ op, path: pointer, value: parsed.value }], base, pointer);
        },
        onCancel: () => cancelInline(),
    });
    open.inline = { view, pointer, box };
    view.focus();
}

/** Opens the inline editor for a new member of the object or array at `pointer`. */
function startAdd(pointer) {
    const open = state.open;
    cancelInline();
    const container = getAt(open.live.document, pointer);
    const isArray = Array.isArray(container);
    if (open.collapsed.has(pointer)) toggle(pointer);
    const li = rowOf(pointer);
    const box = document.createElement("div");
    box.className = "inline add";
    li.querySelector(".row").after(box);
    const key = document.createElement("input");
    key.className = "key-input";
    key.placeholder = isArray ? "index (end)" : "key";
    key.setAttribute("aria-label", isArray ? "Index" : "New key");
    key.spellcheck = false;
    if (isArray) key.value = String(container.length);
    const editorBox = document.createElement("div");
    editorBox.className = "inline-value";
    box.append(key, editorBox);
    const error = inlineError(box);
    const base = clone(open.live);
    const view = valueEditor(editorBox, "null", {
        onSubmit: () => {
            const k = key.value.trim();
            if (!isArray && !k) return (error.textContent = "A key is needed."), key.focus();
            if (!isArray && Object.hasOwn(container, k)) return (error.textContent = `“${k}” exists already: edit it instead.`);
            const parsed = parseJson(view.state.doc.toString());
            if (!parsed.ok) return (error.textContent = parsed.error);
            closeInline();
            const path = isArray ? `${pointer}/${k === String(container.length) ? "-" : k}` : childPointer(pointer, k);
            submitOps([{ op: "add", path, value: parsed.value }], base, childPointer(pointer, k));
        },
        onCancel: () => cancelInline(),
    });
    key.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || (e.key === "Tab" && !e.shiftKey)) {
            e.preventDefault();
            view.focus();
            view.dispatch({ selection: { anchor: 0, head: view.state.doc.length } });
        } else if (e.key === "Escape") cancelInline();
    });
    open.inline = { view, pointer, box };
    (isArray ? view : key).focus();
}

function inlineError(box) {
    const hint = document.createElement("p");
    hint.className = "inline-hint muted";
    hint.innerHTML = "<kbd>Enter</kbd> commits · <kbd>Shift</kbd>+<kbd>Enter</kbd> new line · <kbd>Esc</kbd> cancels";
    box.append(hint);
    const p = document.createElement("p");
    p.className = "error inline-error";
    p.setAttribute("role", "alert");
    box.append(p);
    return p;
}

function parseJson(text) {
    try {
        return { ok: true, value: JSON.parse(text) };
    } catch (e) {
        return { ok: false, error: `Not JSON: ${e.message}` };
    }
}

function closeInline() {
    const open = state.open;
    if (!open?.inline) return;
    open.inline.view.destroy();
    open.inline.box.remove();
    open.inline = null;
    for (const li of $("tree").querySelectorAll("li.editing")) li.classList.remove("editing");
    if (open.treeStale) renderTree();
}

function cancelInline() {
    const pointer = state.open?.inline?.pointer;
    closeInline();
    if (pointer !== undefined) moveFocus(rowOf(pointer));
}

function removeAt(pointer) {
    const open = state.open;
    if (!confirm(`Remove ${pointer}? This commits at once.`)) return;
    submitOps([{ op: "remove", path: pointer }], clone(open.live), parentOf(pointer));
}

// ------------------------------------------------------- the JSON editor --

const setLineMarks = cm.StateEffect.define();
/** Line decorations of changed paths in the JSON editor. */
const lineMarks = cm.StateField.define({
    create: () => cm.Decoration.none,
    update(marks, tr) {
        for (const e of tr.effects) if (e.is(setLineMarks)) return e.value;
        return marks.map(tr.changes);
    },
    provide: (f) => cm.EditorView.decorations.from(f),
});

/** What both editors share: JSON highlighting and linting, history, search. */
function basics() {
    return [
        cm.history(),
        cm.drawSelection(),
        cm.highlightSpecialChars(),
        cm.bracketMatching(),
        cm.closeBrackets(),
        cm.indentOnInput(),
        cm.json(),
        cm.linter(cm.jsonParseLinter(), { delay: 200 }),
        cm.syntaxHighlighting(highlight),
        cm.highlightSelectionMatches(),
        cm.EditorView.lineWrapping,
        cm.keymap.of([
            ...cm.closeBracketsKeymap,
            ...cm.defaultKeymap,
            ...cm.historyKeymap,
            ...cm.searchKeymap,
            ...cm.lintKeymap,
        ]),
    ];
}

/** JSON tokens coloured through CSS variables (light and dark themes). */
const highlight = cm.HighlightStyle.define([
    { tag: cm.tags.propertyName, color: "var(--syn-key)" },
    { tag: cm.tags.string, color: "var(--syn-string)" },
    { tag: cm.tags.number, color: "var(--syn-number)" },
    { tag: [cm.tags.bool, cm.tags.null], color: "var(--syn-literal)", fontWeight: "600" },
    { tag: [cm.tags.brace, cm.tags.squareBracket, cm.tags.separator, cm.tags.punctuation], color: "var(--muted)" },
]);

let editor = null;

function mainEditor() {
    editor ??= new cm.EditorView({
        parent: $("editor"),
        state: cm.EditorState.create({
            doc: "",
            extensions: [
                cm.lineNumbers(),
                cm.foldGutter(),
                cm.lintGutter(),
                cm.highlightActiveLine(),
                cm.highlightActiveLineGutter(),
                cm.search({ top: true }),
                cm.keymap.of([
                    { key: "Mod-s", run: () => (commit(), true), preventDefault: true },
                    { key: "Escape", run: () => (isDirty() ? (discard(), true) : false) },
                    cm.indentWithTab,
                ]),
                basics(),
                lineMarks,
                cm.EditorView.contentAttributes.of({ "aria-label": "Document (JSON)" }),
                cm.EditorView.updateListener.of((u) => u.docChanged && renderDirty()),
            ],
        }),
    });
    return editor;
}

/** Loads the live document into the editor: the base of the next edit. */
function resetEditor(changed = []) {
    const open = state.open;
    const view = mainEditor();
    const { text, lines } = pretty(open.live.document);
    open.editorBase = { ...clone(open.live), text };
    view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    const marks = changed
        .map((p) => lines.get(p) ?? lines.get(parentOf(p)))
        .filter((l) => l !== undefined && l < view.state.doc.lines)
        .sort((a, b) => a - b)
        .filter((l, i, all) => all.indexOf(l) === i)
        .map((l) => cm.Decoration.line({ class: "cm-changed" }).range(view.state.doc.line(l + 1).from));
    view.dispatch({ effects: setLineMarks.of(cm.Decoration.set(marks)) });
    if (marks.length) {
        setTimeout(() => view.dispatch({ effects: setLineMarks.of(cm.Decoration.none) }), HIGHLIGHT_MS);
    }
    renderDirty();
}

/** After a live change: a clean editor follows it; an edited one keeps its text. */
function syncEditor(changed) {
    if (!isDirty()) resetEditor(changed);
}

function isDirty() {
    const base = state.open?.editorBase;
    return !!(editor && base && editor.state.doc.toString() !== base.text);
}

function renderDirty() {
    const open = state.open;
    const dirty = isDirty();
    $("dirty").hidden = !dirty;
    $("revert").hidden = !dirty;
    $("commit").hidden = !dirty;
    if (dirty && open.live && open.editorBase.head !== open.live.head && !open.conflict) {
        const theirs = diff(open.editorBase.document, open.live.document).flatMap(touched);
        notice(
            `You are editing head ${short(open.editorBase.head)}; it has moved to ${short(open.live.head)} ` +
                `(${theirs.map(label).join(", ") || "no visible change"}). Commit to see both edits side by side.`,
            "warn",
        );
    }
}

function discard() {
    hideConflict();
    resetEditor();
    notice(null);
}

/** Commits the JSON editor: `PUT` of the document on the head it started from. */
async function commit() {
    const open = state.open;
    if (open?.inline) return open.inline.view.focus();
    if (!open || !isDirty()) return;
    const parsed = parseJson(editor.state.doc.toString());
    if (!parsed.ok) return notice(`${parsed.error}. Fix it (the editor marks where) before committing.`, "error");
    const base = open.editorBase;
    const mine = diff(base.document, parsed.value);
    if (!mine.length) return resetEditor();
    await submit({ method: "PUT", body: parsed.value, type: "application/json" }, mine, base, "editor");
}

// ------------------------------------------------- commits and conflicts --

/** Commits ops made in the tree on the head `base` they were made on. */
async function submitOps(ops, base, focus) {
    await submit({ method: "PATCH", body: ops, type: "application/json-patch+json" }, ops, base, "tree", focus);
}

/**
 * Sends one write with `If-Match: base.head`. 412 (the head moved) and 409
 * (another writer's patch on the same parent won) open the conflict panel.
 * `mine` is the edit as ops on `base`: what "Re-apply on top" sends again.
 */
async function submit(request, mine, base, origin, focus) {
    const open = state.open;
    notice("Committing…", "busy");
    try {
        await inflight(async () => {
            const { data } = await api(request.method, configPath(open.root), {
                body: request.body,
                type: request.type,
                ifMatch: base.head,
            });
            committed(data, origin, focus);
        });
    } catch (e) {
        if (e.status === 412 || e.status === 409) return showConflict(mine, base, origin);
        notice(`Not committed: ${e.message}`, "error");
    }
}

function committed(data, origin, focus) {
    const open = state.open;
    open.own.add(data.head);
    hideConflict();
    notice(`Committed: head ${short(data.head)}, height ${data.height}.`, "ok");
    if (origin === "editor") {
        // The editor's text is now the server's; it follows the stream again
        // (the change event of this head reloads it).
        open.editorBase = { ...open.editorBase, text: editor.state.doc.toString() };
        renderDirty();
    }
    if (open.live && data.height <= open.live.height) resetEditor();
    if (focus !== undefined) {
        const again = () => (rowOf(focus) ?? rowOf(""))?.focus();
        requestAnimationFrame(again);
    }
}

/** Reads the current head and shows what the other writer changed. */
async function showConflict(mine, base, origin) {
    const open = state.open;
    let current;
    try {
        const got = await api("GET", configPath(open.root));
        current = { head: got.head, height: got.height, document: got.data };
    } catch (e) {
        return notice(`Conflict, and the current head cannot be read: ${e.message}`, "error");
    }
    const theirs = diff(base.document, current.document);
    open.conflict = { mine, base, current, origin };
    notice(null);
    const mineTouched = mine.flatMap(touched);
    const theirsTouched = theirs.flatMap(touched);
    $("conflict-summary").textContent =
        `Your edit was made on head ${short(base.head)} (height ${base.height}); ` +
        `the head is now ${short(current.head)} (height ${current.height}). ` +
        (theirsTouched.some((t) => mineTouched.some((m) => overlaps(t, m)))
            ? "You both changed the marked paths: re-applying puts your values over theirs."
            : "Your edit and theirs touch different paths: re-applying keeps both.");
    $("conflict-theirs").replaceChildren(...(theirs.length ? opItems(theirs, base.document, mineTouched) : [emptyOps()]));
    $("conflict-mine").replaceChildren(...opItems(mine, base.document, theirsTouched));
    $("conflict-error").hidden = true;
    $("conflict").hidden = false;
    $("reapply").focus();
}

/**
 * Ops as lines (the conflict panel, the history, the rollback dialog): what
 * each does, where, the value before and after. `before` is the document the
 * ops apply to, or undefined when it is not known (then an op reads as its
 * RFC 6902 verb, with its value only). Each op is shown against the document
 * as the ops before it left it, so that a patch that adds then sets the same
 * member reads right. Ops touching one of the `other` pointers are marked.
 */
function opItems(ops, before, other = []) {
    let doc = before;
    return ops.map((op) => {
        const li = opItem(op, doc, other);
        if (doc !== undefined) {
            try {
                doc = applyPatch(doc, [op]);
            } catch {
                doc = undefined;
            }
        }
        return li;
    });
}

/** One op as a line: an `add` or `replace` over an existing value reads "set". */
function opItem(op, doc, other) {
    const li = document.createElement("li");
    const collides = touched(op).some((p) => other.some((o) => overlaps(p, o)));
    if (collides) li.className = "collides";
    const before = op.op === "move" || doc === undefined ? undefined : getAt(doc, op.path);
    const verb = (op.op === "add" || op.op === "replace") && before !== undefined ? "set" : op.op;
    const kind = document.createElement("span");
    kind.className = `op op-${verb}`;
    kind.textContent = verb;
    const code = document.createElement("code");
    code.textContent = op.op === "move" || op.op === "copy" ? `${op.from} → ${op.path}` : op.path || "(whole document)";
    li.append(kind, code);
    const shown = (value, cls) => {
        const v = document.createElement("span");
        v.className = cls;
        const text = JSON.stringify(value);
        v.textContent = text.length > 120 ? `${text.slice(0, 117)}…` : text;
        li.append(v);
    };
    if (before !== undefined && (verb === "set" || verb === "remove")) shown(before, "op-before");
    if (verb === "set") li.append(Object.assign(document.createElement("span"), { className: "muted", textContent: "→" }));
    if ("value" in op && op.op !== "test") shown(op.value, "op-value");
    return li;
}

const emptyOps = () => Object.assign(document.createElement("li"), { className: "muted", textContent: "nothing visible (a no-op write)" });

function hideConflict() {
    if (state.open) state.open.conflict = null;
    $("conflict").hidden = true;
}

/** "Re-apply on top": the same ops, `PATCH`ed on the current head. */
async function reapply() {
    const open = state.open;
    const c = open?.conflict;
    if (!c) return;
    try {
        await inflight(async () => {
            const { data } = await api("PATCH", configPath(open.root), {
                body: c.mine,
                type: "application/json-patch+json",
                ifMatch: c.current.head,
            });
            if (c.origin === "editor") open.editorBase = { ...open.editorBase, text: editor.state.doc.toString() };
            committed(data, c.origin);
            resetEditorWhenLive(data.head);
        });
    } catch (e) {
        if (e.status === 412 || e.status === 409) return showConflict(c.mine, c.base, c.origin);
        const why = e.status === 422
            ? `Your edit does not apply on the new head (${e.message}). Edit it again on the current document.`
            : `Not committed: ${e.message}`;
        $("conflict-error").textContent = why;
        $("conflict-error").hidden = false;
    }
}

/** Loads the editor from the live document once it has reached `head`. */
function resetEditorWhenLive(head) {
    const open = state.open;
    const check = () => {
        if (state.open !== open) return;
        if (open.live.head === head || open.own.has(open.live.head)) resetEditor();
        else setTimeout(check, 50);
    };
    check();
}

// ---------------------------------------------------------------- history --

/** Entries per history page (the API's default). */
const HISTORY_PAGE = 50;

/** An open configuration's history, as loaded so far. */
function historyState() {
    return {
        /** Entries, newest first, as the API gives them. */
        entries: [],
        /** The `before` of the next (older) page, or null on the last one. */
        next: null,
        /** `all`, `none` or a count: how much history the server keeps. */
        retention: null,
        /** Whether a first page has been read (the tab was opened). */
        loaded: false,
        /** The head moved while the tab was hidden: reload when it shows. */
        stale: false,
        /** Why the history cannot be shown, or null. */
        error: null,
        /** The loads, one after the other: a reload and "Load more" both
         * build on the list the one before left. */
        queue: Promise.resolve(),
        /** The pending reload (a head change, or the store catching up). */
        timer: null,
        /** Reloads made because the store had not caught up with the head. */
        retries: 0,
        /** Hashes whose diff is unfolded (kept across re-renders). */
        unfolded: new Set(),
        /** Version -> its document (or null when it cannot be read): the
         * "before" of the entries made on it, read when one is unfolded. */
        documents: new Map(),
        /** Hash -> when it appeared, for entries that came after the first
         * read (highlighted a few seconds, as the tree's changed paths). */
        arrived: new Map(),
        /** After our rollback: the height whose entry takes the focus. */
        focusTop: null,
    };
}

/**
 * Reads the history: the first page, or (`more`) the next older one. A
 * reload after a head change asks for as many entries as are shown plus the
 * new ones, in one request, so that the list stays what "Load more" made it
 * and `next` stays right.
 */
function loadHistory(options) {
    const open = state.open;
    if (!open) return;
    const h = open.history;
    h.queue = h.queue
        .then(() => state.open === open && readHistory(open, options))
        .catch((e) => console.warn("history:", e));
}

async function readHistory(open, { more = false } = {}) {
    const h = open.history;
    clearTimeout(h.timer);
    h.timer = null;
    const params = new URLSearchParams();
    if (more) {
        if (h.next === null) return;
        params.set("limit", String(HISTORY_PAGE));
        params.set("before", String(h.next));
    } else if (!h.loaded || !h.entries.length) {
        params.set("limit", String(HISTORY_PAGE));
    } else {
        const top = h.entries[0].height;
        const newer = Math.max(0, (open.live?.height ?? top) - top);
        params.set("limit", String(Math.min(1000, Math.max(HISTORY_PAGE, h.entries.length + newer))));
    }
    if (!h.loaded) renderHistory();
    let data;
    try {
        ({ data } = await api("GET", `${configPath(open.root)}/history?${params}`));
    } catch (e) {
        if (state.open !== open) return;
        h.loaded = true;
        h.error = e.status === 501
            ? "This server keeps no history: it runs without a store (--no-storage)."
            : e.status === 410
              ? `This history is no longer kept: ${e.message}`
              : `Cannot read the history: ${e.message}`;
        return renderHistory();
    }
    if (state.open !== open) return;
    const firstLoad = !h.loaded;
    h.loaded = true;
    h.stale = false;
    h.error = null;
    h.retention = data.retention;
    if (more) {
        const oldest = h.entries[h.entries.length - 1]?.height ?? Infinity;
        h.entries = h.entries.concat(data.entries.filter((e) => e.height < oldest));
    } else {
        if (!firstLoad) {
            const shown = new Set(h.entries.map((e) => e.hash));
            const top = h.entries[0]?.height ?? 0;
            for (const e of data.entries) if (e.height > top && !shown.has(e.hash)) h.arrived.set(e.hash, Date.now());
        }
        h.entries = data.entries;
    }
    h.next = data.next;
    // The event stream follows the bus; the history reads the store, which
    // may store a patch a moment after followers see it: read again shortly
    // rather than show a list one change behind the header.
    // (Bounded: about 25 s, in case the store never has it, e.g. a patch
    // stored before the store kept history.)
    const behind = !more && data.retention !== "none" && open.live && (h.entries[0]?.height ?? 0) < open.live.height;
    if (behind && h.retries < 40) {
        h.retries += 1;
        h.timer = setTimeout(() => state.open === open && loadHistory(), 100 + 25 * h.retries);
    } else if (!behind) h.retries = 0;
    renderHistory();
}

/** The head moved (an event): the history follows when it is shown. */
function historyHeadMoved() {
    const open = state.open;
    const h = open.history;
    const base = rollback?.open === open ? rollback.base : null;
    // Past the base, not merely catching up to it (the dialog read the head
    // from the server, which the stream may not have reached yet).
    if (base && (open.live.height > base.height || (open.live.height === base.height && open.live.head !== base.head))) {
        // Rolling back now would be refused (If-Match names the old head):
        // say so before the click rather than only after it.
        setRollbackStatus(
            `The head has moved to ${short(open.live.head)} since this diff was computed: ` +
                "rolling back now will be refused. Review the new diff first.",
            "warn",
        );
        $("rollback-review").hidden = false;
    }
    if (!h.loaded) return;
    if ($("history-view").hidden) {
        h.stale = true;
        return;
    }
    // Several changes in a burst make one request.
    clearTimeout(h.timer);
    h.timer = setTimeout(() => state.open === open && loadHistory(), 60);
}

/** "just now", "5 min ago", "3 h ago", else the local date and time. */
function when(time) {
    const t = Date.parse(time);
    if (Number.isNaN(t)) return time;
    const s = (Date.now() - t) / 1000;
    if (s < 45) return "just now";
    if (s < 3600) return `${Math.max(1, Math.round(s / 60))} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return new Date(t).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

const el = (tag, className, text) => {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
};

/** A hash shown short, the whole one in its tooltip. */
function hashCode(hash, what, className = "hist-hash") {
    const code = el("code", className, short(hash));
    code.title = `${what} ${hash}`;
    return code;
}

/** The list, its status line and its foot. */
function renderHistory() {
    const open = state.open;
    if (!open) return;
    const h = open.history;
    const status = $("history-status");
    status.dataset.kind = h.error ? "error" : "info";
    const oldest = h.entries[h.entries.length - 1];
    let text = "";
    if (h.error) text = h.error;
    else if (!h.loaded) text = "Reading the history…";
    else if (h.retention === "none") {
        text = "This server keeps no history (it runs with --retention none): " +
            "there are no earlier versions to show or roll back to.";
    } else if (!h.entries.length) {
        text = open.live?.height
            ? "The history of this configuration is not kept any more."
            : "No changes yet: the document is as the root was registered.";
    }
    status.textContent = text;
    const list = $("history");
    const focused = document.activeElement?.closest?.("#history li");
    const focusHash = focused?.dataset.hash;
    const focusWhat = document.activeElement === focused ? "li" : document.activeElement?.dataset?.part;
    // Rows whose content is unchanged are kept, not rebuilt: a re-render
    // (every head change) then leaves the focus, an unfolded diff and a row
    // being clicked where they are. A row's key is all it shows that can
    // change: being the head, and whether the version it restored is listed.
    const kept = new Map([...list.children].map((li) => [li.dataset.key, li]));
    const row = (key, make) => {
        const li = kept.get(key) ?? make();
        li.dataset.key = key;
        return li;
    };
    const items = h.error
        ? []
        : h.entries.map((entry) => {
              const restored = !!entry.rollback_of && h.entries.some((e) => e.hash === entry.rollback_of);
              const key = `${entry.hash ?? `damaged-${entry.height}`}:${entry.hash === open.live?.head}:${restored}`;
              return row(key, () => historyItem(entry, open, h));
          });
    // The registration (height 0) is a version too: the document as the
    // root was registered, which a rollback can restore.
    if (!h.error && h.next === null && oldest?.height === 1 && oldest.parent === open.root) {
        items.push(row(`origin:${open.live?.head === open.root}`, () => originItem(open)));
    }
    // Remove the rows that go, then insert the new ones in place: the rows
    // kept are already in order (the list only grows at its ends), so none
    // of them moves (moving a node would take the focus from it).
    const wanted = new Set(items);
    for (const li of [...list.children]) if (!wanted.has(li)) li.remove();
    let cursor = list.firstElementChild;
    for (const li of items) {
        if (li === cursor) cursor = cursor.nextElementSibling;
        else list.insertBefore(li, cursor);
    }
    for (const t of list.querySelectorAll("time")) t.textContent = when(t.dateTime);
    if (h.focusTop !== null && h.entries[0]?.height >= h.focusTop) {
        // After our rollback: the focus goes to its entry.
        h.focusTop = null;
        list.querySelector("li")?.focus();
    } else if (focused && !focused.isConnected) {
        // The focused row was rebuilt: the focus goes to its new self.
        const li = list.querySelector(`li[data-hash="${focusHash}"]`);
        const again = focusWhat === "li" ? li : li?.querySelector(`[data-part="${focusWhat}"]`);
        (again ?? li)?.focus({ preventScroll: true });
    }
    $("history-more").hidden = h.error !== null || h.next === null;
    const n = h.entries.length;
    let count = n ? `${n}${h.next === null ? "" : "+"} change${n === 1 ? "" : "s"}` : "";
    if (n && h.next === null && oldest.height > 1) {
        // The window begins after the registration: say why the list stops.
        count += ` · older ones are not kept (this server keeps ${h.retention === "all" ? "all it stored" : `the last ${h.retention} per root`})`;
    }
    $("history-count").textContent = count;
}

/** One entry: who, when, height, hash, message, what it restored, its diff. */
function historyItem(entry, open, h) {
    const li = el("li");
    li.tabIndex = -1;
    li.dataset.height = entry.height;
    li.dataset.hash = entry.hash ?? "";
    const since = Date.now() - (h.arrived.get(entry.hash) ?? -Infinity);
    if (since < HIGHLIGHT_MS) {
        li.classList.add("fresh");
        // A re-render makes new rows: the fade goes on where it was.
        li.style.animationDelay = `${-since}ms`;
    }
    const line = el("div", "hist-line");
    line.append(el("span", "hist-height", `height ${entry.height}`));
    li.append(line);
    if (entry.error) {
        li.append(el("p", "error hist-message", `This stored entry cannot be read: ${entry.error}`));
        return li;
    }
    line.append(entry.author ? el("span", "hist-author", entry.author) : el("span", "muted", "unknown author"));
    if (entry.time) {
        const time = el("time", "hist-when", when(entry.time));
        time.dateTime = entry.time;
        const t = Date.parse(entry.time);
        time.title = Number.isNaN(t) ? entry.time : `${entry.time} (${new Date(t).toLocaleString()})`;
        line.append(time);
    } else line.append(el("span", "hist-when", "time not recorded"));
    line.append(hashCode(entry.hash, "Version"));
    const isHead = entry.hash === open.live?.head;
    if (isHead) line.append(el("span", "badge current", "current"));
    line.append(el("span", "spacer"));
    if (!isHead) line.append(rollbackButton(entry.hash, entry.height));
    li.append(entry.message ? el("p", "hist-message", entry.message) : el("p", "hist-message none", "no message"));
    if (entry.rollback_of) {
        const restored = h.entries.find((e) => e.hash === entry.rollback_of);
        const p = el("p", "hist-restores", "Rolled back to ");
        p.append(hashCode(entry.rollback_of, "Restored version", ""));
        if (restored) p.append(` (height ${restored.height})`);
        else if (entry.rollback_of === open.root) p.append(" (the registration, height 0)");
        li.append(p);
    }
    li.append(diffDetails(entry, h));
    return li;
}

/** The registration, at the end of a history that reaches back to it. */
function originItem(open) {
    const li = el("li");
    li.tabIndex = -1;
    li.dataset.height = "0";
    li.dataset.hash = open.root;
    const line = el("div", "hist-line");
    line.append(el("span", "hist-height", "height 0"), el("span", "hist-author", "registered"), hashCode(open.root, "Root"));
    line.append(el("span", "spacer"));
    if (open.live?.head !== open.root) line.append(rollbackButton(open.root, 0));
    li.append(line, el("p", "hist-message none", "the root configuration: the document every change starts from"));
    return li;
}

function rollbackButton(hash, height) {
    const b = el("button", "rollback", "Roll back to this version");
    b.type = "button";
    b.dataset.part = "rollback";
    b.dataset.to = hash;
    b.dataset.height = height;
    // The visible text is the same on every entry: the name says which.
    b.setAttribute("aria-label", `Roll back to this version (height ${height}, ${short(hash)})`);
    return b;
}

/**
 * The change's ops, folded under a one-line summary. Unfolding it reads the
 * version it was made on (once), so that each op shows the value it replaced
 * or removed; without that version (no longer kept) the ops show alone.
 */
function diffDetails(entry, h) {
    const ops = entry.ops ?? [];
    const details = el("details", "hist-diff");
    const summary = el("summary");
    summary.dataset.part = "diff";
    const paths = ops.slice(0, 4).map((op) => `${op.op} ${op.path || "(whole document)"}`);
    summary.textContent = `${ops.length} change${ops.length === 1 ? "" : "s"}${ops.length ? ": " : ""}${paths.join(", ")}${ops.length > 4 ? ", …" : ""}`;
    details.append(summary);
    const fill = () => {
        const before = h.documents.get(entry.parent);
        const list = el("ul", "ops");
        list.replaceChildren(...(ops.length ? opItems(ops, before ?? undefined) : [emptyOps()]));
        details.replaceChildren(summary, list);
        if (before === null) {
            details.append(el("p", "muted hist-note", "The version before it is no longer kept: the values it replaced are not shown."));
        }
    };
    if (h.unfolded.has(entry.hash)) {
        details.open = true;
        fill();
    }
    details.addEventListener("toggle", async () => {
        if (!details.open) return void h.unfolded.delete(entry.hash);
        h.unfolded.add(entry.hash);
        fill();
        if (h.documents.has(entry.parent) || !entry.parent) return;
        const open = state.open;
        try {
            const { data } = await api("GET", `${configPath(open.root)}/at/${entry.parent}`);
            h.documents.set(entry.parent, data.document);
        } catch {
            h.documents.set(entry.parent, null);
        }
        if (state.open === open && details.isConnected && details.open) fill();
    });
    return details;
}

// --------------------------------------------------------------- rollback --

/**
 * The open rollback confirmation: {open, target: {hash, height}, base: the
 * head {head, height, document} its diff was computed on, or null while it
 * is computed, ops}; null when the dialog is closed.
 */
let rollback = null;

function setRollbackStatus(text, kind = "info") {
    const s = $("rollback-status");
    s.textContent = text;
    s.className = kind === "warn" ? "error" : "muted";
}

/** Opens the confirmation for restoring `hash` (at `height`). */
function openRollback(hash, height) {
    const open = state.open;
    rollback = { open, target: { hash, height }, base: null, ops: null, opener: hash };
    $("rollback-title").textContent = `Roll back to height ${height}?`;
    $("rollback-message").value = "";
    // The server's default message, as a hint of what is written without one.
    $("rollback-message").placeholder = `rollback to ${hash.slice(0, 12)}`;
    $("rollback-dialog").showModal();
    $("rollback-message").focus();
    prepareRollback();
}

/**
 * Reads the current head and the diff from it to the target. The rollback
 * is then sent with `If-Match` on exactly that head: what the dialog shows is
 * what gets applied, or nothing is (412/409 when the head moved meanwhile).
 */
async function prepareRollback() {
    const r = rollback;
    const open = r.open;
    // Numbered: when "Review" is pressed again, only the newest reading counts.
    const gen = (r.gen = (r.gen ?? 0) + 1);
    r.base = null;
    $("rollback-confirm").disabled = true;
    // The review button is about to hide: the focus must not go with it.
    if (document.activeElement === $("rollback-review")) $("rollback-message").focus();
    $("rollback-review").hidden = true;
    $("rollback-error").hidden = true;
    $("rollback-ops").replaceChildren();
    $("rollback-summary").textContent = `Restoring version ${short(r.target.hash)} (height ${r.target.height}).`;
    setRollbackStatus("Computing what the rollback changes…");
    try {
        const got = await api("GET", configPath(open.root));
        const base = { head: got.head, height: got.height, document: got.data };
        const params = new URLSearchParams({ from: base.head, to: r.target.hash });
        const { data } = await api("GET", `${configPath(open.root)}/diff?${params}`);
        if (rollback !== r || r.gen !== gen) return;
        r.base = base;
        r.ops = data.ops;
        $("rollback-summary").textContent =
            `This writes one new change on the current head ${short(base.head)} (height ${base.height}) ` +
            `that makes the document what it was at ${short(r.target.hash)} (height ${r.target.height}). ` +
            "Nothing is erased: the history keeps every version, this rollback included.";
        $("rollback-ops").replaceChildren(...opItems(data.ops, base.document));
        if (data.ops.length) {
            setRollbackStatus(`It changes ${data.ops.length} path${data.ops.length === 1 ? "" : "s"}:`);
            $("rollback-confirm").disabled = false;
        } else {
            setRollbackStatus("The document is already as it was at that version: rolling back would change nothing.");
        }
    } catch (e) {
        if (rollback !== r || r.gen !== gen) return;
        setRollbackStatus("");
        rollbackError(
            e.status === 410
                ? `This version can no longer be restored: ${e.message}`
                : e.status === 404
                  ? `This version is not one of this configuration's: ${e.message}`
                  : `Cannot compute the diff: ${e.message}`,
        );
    }
}

function rollbackError(text) {
    $("rollback-error").textContent = text;
    $("rollback-error").hidden = false;
}

/** Confirm: `POST .../rollback` with `If-Match` on the head the diff was computed on. */
async function confirmRollback(event) {
    event.preventDefault();
    const r = rollback;
    if (!r?.base || $("rollback-confirm").disabled) return;
    const open = r.open;
    $("rollback-confirm").disabled = true;
    $("rollback-error").hidden = true;
    setRollbackStatus("Rolling back…");
    const message = $("rollback-message").value.trim();
    const body = message ? { to: r.target.hash, message } : { to: r.target.hash };
    let data;
    try {
        await inflight(async () => {
            ({ data } = await api("POST", `${configPath(open.root)}/rollback`, { body, ifMatch: r.base.head }));
            // Our own change: not highlighted as someone else's when it arrives.
            open.own.add(data.head);
        });
    } catch (e) {
        if (rollback !== r) return;
        setRollbackStatus("");
        if (e.status === 412 || e.status === 409) {
            const now = e.problem?.current ?? e.problem?.winner;
            rollbackError(
                "Not rolled back: the configuration changed after this diff was computed" +
                    `${now ? ` (the head is now ${short(now)})` : ""}, so nothing was applied. ` +
                    "Review the new diff before rolling back.",
            );
            $("rollback-review").hidden = false;
            $("rollback-review").focus();
        } else {
            rollbackError(`Not rolled back: ${e.message}`);
            // 410/404/422 would answer the same again; anything else (503: the
            // outcome is unknown) may be retried, after a look at the history.
            $("rollback-confirm").disabled = [404, 410, 422].includes(e.status);
        }
        return;
    }
    r.opener = null;
    $("rollback-dialog").close();
    if (state.open !== open) return;
    notice(`Rolled back to ${short(r.target.hash)}: head ${short(data.head)}, height ${data.height}.`, "ok");
    // The new entry is at the top: the focus goes there once it is read.
    open.history.focusTop = data.height;
    loadHistory();
}

/** The dialog closed (Confirm, Cancel, Esc): the focus goes back to its button. */
function rollbackClosed() {
    const r = rollback;
    rollback = null;
    if (!r?.opener) return;
    const li = $("history").querySelector(`li[data-hash="${r.opener}"]`);
    (li?.querySelector("button.rollback") ?? li ?? $("tab-history")).focus();
}

// ------------------------------------------------------------------ chrome --

/** The line under the tabs: a change, a commit, an error (null hides it). */
function notice(text, kind = "info") {
    const el = $("notice");
    el.hidden = !text;
    el.textContent = text ?? "";
    el.dataset.kind = kind;
}

function selectTab(name) {
    for (const t of ["tree", "json", "history"]) {
        const tab = $(`tab-${t}`);
        tab.setAttribute("aria-selected", String(t === name));
        tab.tabIndex = t === name ? 0 : -1;
        $(`${t}-view`).hidden = t !== name;
    }
    if (name === "json") {
        mainEditor().requestMeasure();
        editor.focus();
    } else if (name === "tree") focusTree();
    else if (name === "history" && state.open) {
        const h = state.open.history;
        if (!h.loaded || h.stale) loadHistory();
        else renderHistory();
    }
}

function isTyping() {
    const el = document.activeElement;
    return !!el && (el.matches("input, select, textarea, [contenteditable='true']") || !!el.closest(".cm-editor"));
}

function route() {
    const m = /^#\/r\/([0-9a-f]{64})$/.exec(location.hash);
    if (m) {
        if (state.open?.root !== m[1]) openConfig(m[1]);
        else $("app").dataset.view = "config";
    } else {
        const was = state.open?.root;
        closeConfig();
        $("config").hidden = true;
        $("placeholder").hidden = false;
        $("app").dataset.view = "list";
        renderRoots();
        // Back in the list, the focus is on the root just left (the button
        // that led here may be hidden now, on a narrow window).
        $("roots").querySelector(`a[data-root="${was}"]`)?.focus();
    }
}

function onGlobalKey(e) {
    // The editors handle their own keys (Ctrl+S, Esc) and mark them handled.
    if (e.defaultPrevented) return;
    if (e.key === "s" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        return commit();
    }
    if (e.key === "Escape") {
        // An open dialog closes itself on Esc; nothing behind it reacts.
        if (document.querySelector("dialog[open]")) return;
        if (state.open?.inline) return cancelInline();
        if (!$("add-root").hidden) return hideAdd();
        if (state.open?.conflict) return hideConflict();
        return;
    }
    if (isTyping() || e.ctrlKey || e.metaKey || e.altKey || document.querySelector("dialog[open]")) return;
    const keys = {
        "/": () => $("search").focus(),
        a: () => showAdd(),
        "?": () => $("keys-dialog").showModal(),
        t: () => state.open && selectTab("tree"),
        j: () => state.open && selectTab("json"),
        h: () => state.open && selectTab("history"),
    };
    if (keys[e.key]) {
        e.preventDefault();
        keys[e.key]();
    }
}

/** Arrow keys from the search box into the list, and within the list. */
function onListKey(e) {
    const items = [...$("roots").querySelectorAll("a.root-item")];
    const i = items.indexOf(document.activeElement);
    if (e.key === "ArrowDown") {
        e.preventDefault();
        items[Math.min(i + 1, items.length - 1)]?.focus();
    } else if (e.key === "ArrowUp") {
        e.preventDefault();
        if (i <= 0) $("search").focus();
        else items[i - 1].focus();
    }
}

function showAdd() {
    $("add-root").hidden = false;
    $("add-error").hidden = true;
    $("add-channel").focus();
}

function hideAdd() {
    $("add-root").hidden = true;
    $("add-root-button").focus();
}

function onTabKey(e) {
    const tabs = ["tree", "json", "history"];
    const i = tabs.findIndex((t) => $(`tab-${t}`) === e.target);
    if (i < 0) return;
    const next = e.key === "ArrowRight" ? (i + 1) % 3 : e.key === "ArrowLeft" ? (i + 2) % 3 : -1;
    if (next >= 0) {
        e.preventDefault();
        selectTab(tabs[next]);
        $(`tab-${tabs[next]}`).focus();
    }
}

function start() {
    $("search").addEventListener("input", renderRoots);
    $("search").addEventListener("keydown", onListKey);
    $("roots").addEventListener("keydown", onListKey);
    $("platform").addEventListener("change", () => loadRoots());
    $("more").addEventListener("click", () => loadRoots({ more: true }));
    $("add-root-button").addEventListener("click", () => ($("add-root").hidden ? showAdd() : hideAdd()));
    $("add-cancel").addEventListener("click", hideAdd);
    $("add-root").addEventListener("submit", addRoot);
    $("back").addEventListener("click", () => (location.hash = "#/"));
    $("tree").addEventListener("keydown", onTreeKey);
    $("tree").addEventListener("click", onTreeClick);
    $("tree").addEventListener("dblclick", (e) => {
        const li = e.target.closest("li[data-pointer]");
        if (li && !e.target.closest(".inline, button")) startEdit(li.dataset.pointer);
    });
    for (const t of ["tree", "json", "history"]) $(`tab-${t}`).addEventListener("click", () => selectTab(t));
    $("config").querySelector(".tabs").addEventListener("keydown", onTabKey);
    $("commit").addEventListener("click", commit);
    $("revert").addEventListener("click", discard);
    $("reapply").addEventListener("click", reapply);
    $("conflict-discard").addEventListener("click", () => {
        discard();
        focusTree();
    });
    $("history-more").addEventListener("click", () => loadHistory({ more: true }));
    $("history").addEventListener("click", (e) => {
        const b = e.target.closest("button.rollback");
        if (b) openRollback(b.dataset.to, Number(b.dataset.height));
    });
    $("rollback-form").addEventListener("submit", confirmRollback);
    $("rollback-cancel").addEventListener("click", () => $("rollback-dialog").close());
    $("rollback-review").addEventListener("click", () => rollback && prepareRollback());
    $("rollback-dialog").addEventListener("close", rollbackClosed);
    $("keys-button").addEventListener("click", () => $("keys-dialog").showModal());
    document.addEventListener("keydown", onGlobalKey);
    window.addEventListener("hashchange", route);
    window.addEventListener("beforeunload", (e) => isDirty() && e.preventDefault());
    loadRoots().then(route);
}

start();
