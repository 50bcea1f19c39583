// JSON helpers of the console, with no DOM: RFC 6901 pointers, applying RFC
// 6902 ops (what a `change` event carries), the difference between two
// documents as ops (what the conflict panel shows and what "Re-apply on top"
// sends), and pretty-printing that remembers which line each value starts on
// (so that the JSON view can highlight changed paths).

/** Escapes one key as a pointer segment (RFC 6901: `~` as `~0`, `/` as `~1`). */
export function escapeSegment(key) {
    return String(key).replaceAll("~", "~0").replaceAll("/", "~1");
}

/** A pointer's segments: "" is [], "/a/b" is ["a", "b"]. */
export function parsePointer(pointer) {
    if (pointer === "") return [];
    if (!pointer.startsWith("/")) throw new Error(`not a JSON Pointer: ${pointer}`);
    return pointer
        .slice(1)
        .split("/")
        .map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
}

/** The pointer of a child of `pointer`. */
export function childPointer(pointer, key) {
    return `${pointer}/${escapeSegment(key)}`;
}

/** The value at `pointer`, or undefined. */
export function getAt(doc, pointer) {
    let node = doc;
    for (const seg of parsePointer(pointer)) {
        if (node === null || typeof node !== "object") return undefined;
        if (Array.isArray(node)) {
            if (!/^(0|[1-9][0-9]*)$/.test(seg)) return undefined;
            node = node[Number(seg)];
        } else {
            if (!Object.hasOwn(node, seg)) return undefined;
            node = node[seg];
        }
    }
    return node;
}

/** A deep copy (documents are plain JSON). */
export function clone(value) {
    return value === undefined ? undefined : structuredClone(value);
}

/** Deep equality of two JSON values. */
export function equal(a, b) {
    if (a === b) return true;
    if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
    if (Array.isArray(a) !== Array.isArray(b)) return false;
    if (Array.isArray(a)) return a.length === b.length && a.every((x, i) => equal(x, b[i]));
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && equal(a[k], b[k]));
}

/**
 * Applies RFC 6902 `ops` to a copy of `doc` and returns it; throws when an
 * op does not apply (the server applied them already, so that means our copy
 * is out of step and the caller re-reads the document).
 */
export function applyPatch(doc, ops) {
    let root = clone(doc);
    // Replaces the value at `segs` (the root when empty) through `edit`, which
    // gets the parent container and the last segment.
    const at = (segs, edit) => {
        if (segs.length === 0) return edit(null, null);
        let parent = root;
        for (const seg of segs.slice(0, -1)) {
            parent = Array.isArray(parent) ? parent[Number(seg)] : parent?.[seg];
            if (parent === null || typeof parent !== "object") throw new Error("path not found");
        }
        return edit(parent, segs[segs.length - 1]);
    };
    const add = (pointer, value) =>
        at(parsePointer(pointer), (parent, key) => {
            if (parent === null) return void (root = value);
            if (Array.isArray(parent)) {
                const i = key === "-" ? parent.length : Number(key);
                if (!(i >= 0 && i <= parent.length)) throw new Error("index out of range");
                parent.splice(i, 0, value);
            } else parent[key] = value;
        });
    const remove = (pointer) =>
        at(parsePointer(pointer), (parent, key) => {
            if (parent === null) throw new Error("cannot remove the root");
            if (Array.isArray(parent)) {
                const i = Number(key);
                if (!(i >= 0 && i < parent.length)) throw new Error("index out of range");
                return parent.splice(i, 1)[0];
            }
            if (!Object.hasOwn(parent, key)) throw new Error("path not found");
            const old = parent[key];
            delete parent[key];
            return old;
        });
    for (const op of ops) {
        switch (op.op) {
            case "add":
                add(op.path, clone(op.value));
                break;
            case "remove":
                remove(op.path);
                break;
            case "replace":
                if (op.path !== "") remove(op.path);
                add(op.path, clone(op.value));
                break;
            case "move": {
                const value = getAt(root, op.from);
                if (value === undefined) throw new Error("path not found");
                remove(op.from);
                add(op.path, value);
                break;
            }
            case "copy": {
                const value = getAt(root, op.from);
                if (value === undefined) throw new Error("path not found");
                add(op.path, clone(value));
                break;
            }
            case "test":
                if (!equal(getAt(root, op.path), op.value)) throw new Error("test failed");
                break;
            default:
                throw new Error(`unknown op ${op.op}`);
        }
    }
    return root;
}

/**
 * The ops that turn `from` into `to`: objects member by member, arrays of
 * the same length element by element, anything else replaced whole. Object
 * members use `add` (which also replaces), so that re-applied on a head
 * where another writer removed the member, the edit still lands.
 */
export function diff(from, to, pointer = "", ops = []) {
    if (equal(from, to)) return ops;
    const bothObjects =
        from && to && typeof from === "object" && typeof to === "object" &&
        Array.isArray(from) === Array.isArray(to);
    if (bothObjects && !Array.isArray(from)) {
        for (const key of Object.keys(from)) {
            if (!Object.hasOwn(to, key)) ops.push({ op: "remove", path: childPointer(pointer, key) });
        }
        for (const key of Object.keys(to)) {
            const child = childPointer(pointer, key);
            if (!Object.hasOwn(from, key) || !walkable(from[key], to[key])) {
                if (!equal(from[key], to[key])) ops.push({ op: "add", path: child, value: to[key] });
            } else diff(from[key], to[key], child, ops);
        }
    } else if (bothObjects && from.length === to.length) {
        to.forEach((value, i) => diff(from[i], value, childPointer(pointer, i), ops));
    } else {
        ops.push({ op: "replace", path: pointer, value: to });
    }
    return ops;
}

/** Whether `diff` goes inside two values rather than replacing one by the other. */
function walkable(a, b) {
    if (!a || !b || typeof a !== "object" || typeof b !== "object") return false;
    if (Array.isArray(a) !== Array.isArray(b)) return false;
    return !Array.isArray(a) || a.length === b.length;
}

/** The pointers an op changes (`move` changes two). */
export function touched(op) {
    return op.op === "move" ? [op.from, op.path] : op.op === "test" ? [] : [op.path];
}

/** Whether `a` is `b`, inside it, or holds it: two edits there collide. */
export function overlaps(a, b) {
    return a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
}

/**
 * `JSON.stringify(value, null, 2)`, plus the line (0-based) each pointer's
 * value starts on, so that the editor can mark the lines of changed paths.
 */
export function pretty(value) {
    const lines = new Map();
    let line = 0;
    const out = [];
    const write = (text) => {
        out.push(text);
        for (const c of text) if (c === "\n") line += 1;
    };
    const walk = (node, pointer, indent) => {
        lines.set(pointer, line);
        if (node === null || typeof node !== "object") return write(JSON.stringify(node));
        const entries = Array.isArray(node) ? node.map((v, i) => [i, v]) : Object.entries(node);
        const [open, close] = Array.isArray(node) ? ["[", "]"] : ["{", "}"];
        if (entries.length === 0) return write(open + close);
        write(`${open}\n`);
        entries.forEach(([key, child], i) => {
            write(`${indent}  `);
            if (!Array.isArray(node)) write(`${JSON.stringify(key)}: `);
            walk(child, childPointer(pointer, key), `${indent}  `);
            write(i + 1 < entries.length ? ",\n" : "\n");
        });
        write(`${indent}${close}`);
    };
    walk(value, "", "");
    return { text: out.join(""), lines };
}
