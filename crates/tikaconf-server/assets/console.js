// The tikaconf web console: roots, one configuration as a tree and as JSON,
// edits committed with `If-Match` on the head they started from, live changes
// from the event stream, and a conflict panel when another writer was first.
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
    // One op as a line: what it does (an `add` over an existing value reads
    // "set"), where, the value before and after.
    const opItem = (op, other) => {
        const li = document.createElement("li");
        const collides = touched(op).some((p) => other.some((o) => overlaps(p, o)));
        if (collides) li.className = "collides";
        const before = op.op === "move" ? undefined : getAt(base.document, op.path);
        const verb = (op.op === "add" || op.op === "replace") && before !== undefined ? "set" : op.op;
        const kind = document.createElement("span");
        kind.className = `op op-${verb}`;
        kind.textContent = verb;
        const code = document.createElement("code");
        code.textContent = op.op === "move" ? `${op.from} → ${op.path}` : op.path || "(whole document)";
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
    };
    $("conflict-theirs").replaceChildren(...(theirs.length ? theirs.map((op) => opItem(op, mineTouched)) : [emptyOps()]));
    $("conflict-mine").replaceChildren(...mine.map((op) => opItem(op, theirsTouched)));
    $("conflict-error").hidden = true;
    $("conflict").hidden = false;
    $("reapply").focus();
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
    $("keys-button").addEventListener("click", () => $("keys-dialog").showModal());
    document.addEventListener("keydown", onGlobalKey);
    window.addEventListener("hashchange", route);
    window.addEventListener("beforeunload", (e) => isDirty() && e.preventDefault());
    loadRoots().then(route);
}

start();
