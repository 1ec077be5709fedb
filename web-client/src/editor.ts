/**
 * The demo WYSIWYG editor: ProseMirror bound to the `body` Y.XmlFragment with
 * y-prosemirror (sync, telepointers, undo) and a plain `<input>` bound to the
 * `title` Y.Text.
 */
import * as Y from 'yjs'
import type { Node as PMNode, NodeType } from 'prosemirror-model'
import { EditorState } from 'prosemirror-state'
import type { Command } from 'prosemirror-state'
import { EditorView } from 'prosemirror-view'
import { keymap } from 'prosemirror-keymap'
import { baseKeymap, setBlockType, toggleMark, chainCommands, exitCode } from 'prosemirror-commands'
import { wrapInList, splitListItem, liftListItem, sinkListItem } from 'prosemirror-schema-list'
import { ySyncPlugin, yCursorPlugin, yUndoPlugin, undo, redo } from 'y-prosemirror'
import { schema, isSafeUrl } from './schema'
import type { ChorusProvider } from './provider'

/** A colour from awareness is untrusted text: use it only if it is a CSS colour literal. */
export function safeColor (value: unknown, fallback = '#888888'): string {
  if (typeof value !== 'string') return fallback
  if (/^#[0-9a-fA-F]{3,8}$/.test(value)) return value
  if (/^(rgb|rgba|hsl|hsla)\(\s*[-0-9.%, /a-z]+\)$/i.test(value)) return value
  if (/^[a-zA-Z]{3,20}$/.test(value)) return value
  return fallback
}

/** The telepointer: a caret in the user's colour with the name as text (never HTML). */
function cursorBuilder (user: { name?: unknown, color?: unknown }): HTMLElement {
  const color = safeColor(user.color)
  const cursor = document.createElement('span')
  cursor.className = 'chorus-cursor ProseMirror-yjs-cursor'
  cursor.style.borderColor = color
  const label = document.createElement('span')
  label.className = 'chorus-cursor-label'
  label.style.backgroundColor = color
  label.textContent = typeof user.name === 'string' ? user.name : 'anonymous'
  cursor.append(document.createTextNode('\u2060'), label, document.createTextNode('\u2060'))
  return cursor
}

function selectionBuilder (user: { color?: unknown }): { style: string, class: string } {
  const color = safeColor(user.color)
  // 8-digit hex only for #rrggbb; other colours get a plain outline-ish tint.
  const tint = /^#[0-9a-fA-F]{6}$/.test(color) ? `${color}40` : 'rgba(120,120,120,0.25)'
  return { style: `background-color: ${tint}`, class: 'chorus-selection' }
}

/**
 * Why the editor cannot show `fragment` without changing it, or null if it can.
 * A Chorus body is HTML-shaped and may hold structures that no ProseMirror schema
 * represents (text directly inside `<li>`, `<div>` or `<td>`, unknown elements or
 * marks, attributes the schema does not declare). y-prosemirror would silently
 * delete those from the shared document, so the editor refuses to bind to such a
 * body instead (see `createEditor`). The server's HTML import wraps inline runs in
 * block containers in `<p>` (proto/editor-content.json), so host HTML never trips
 * this; a raw Yjs client still can.
 */
export function unsupportedContent (fragment: Y.XmlFragment): string | null {
  try {
    checked(schema.topNodeType, null, pmChildren(fragment))
    return null
  } catch (err) {
    return err instanceof Error ? err.message : String(err)
  }
}

/**
 * The node, if `content` fits `type` (missing required content may be added, as
 * y-prosemirror's ProseMirror would: an empty body gets an empty paragraph; nothing
 * is ever dropped). Throws otherwise.
 */
function checked (type: NodeType, attrs: Record<string, unknown> | null, content: PMNode[]): PMNode {
  const node = type.createAndFill(attrs, content)
  if (node === null) throw new Error(`<${type.name}> with content the editor cannot hold`)
  node.check()
  return node
}

/**
 * Throws if `attrs` (of a Y element or mark) holds an attribute the schema does not
 * declare: y-prosemirror would remove it from the shared document at the next edit
 * of that node.
 */
function keepable (what: string, declared: Record<string, unknown>, attrs: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined) continue
    if (declared[key] === undefined) throw new Error(`${what} has the attribute ${key}, which the editor cannot keep`)
  }
}

function pmChildren (parent: Y.XmlFragment | Y.XmlElement): PMNode[] {
  const out: PMNode[] = []
  for (const child of parent.toArray()) {
    if (child instanceof Y.XmlElement) {
      const type = schema.nodes[child.nodeName]
      if (type === undefined || type === schema.topNodeType || type.isText) {
        throw new Error(`<${child.nodeName}> is not in the editor's schema`)
      }
      const attrs = child.getAttributes()
      keepable(`<${child.nodeName}>`, type.spec.attrs ?? {}, attrs)
      try {
        out.push(checked(type, attrs, pmChildren(child)))
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err)
        throw new Error(why.startsWith('<') ? why : `<${child.nodeName}> with content the editor cannot hold (${why})`)
      }
    } else if (child instanceof Y.XmlText) {
      for (const op of child.toDelta() as Array<{ insert: unknown, attributes?: Record<string, unknown> }>) {
        if (typeof op.insert !== 'string') throw new Error('an embed inside text')
        if (op.insert === '') continue
        const marks = Object.entries(op.attributes ?? {}).map(([key, value]) => {
          const name = key.split('--')[0]
          const type = schema.marks[name]
          if (type === undefined) throw new Error(`the mark <${name}> is not in the editor's schema`)
          const attrs = typeof value === 'object' && value !== null ? value as Record<string, unknown> : null
          if (attrs !== null) keepable(`the mark <${name}>`, type.spec.attrs ?? {}, attrs)
          return type.create(attrs)
        })
        out.push(schema.text(op.insert, marks))
      }
    } else {
      throw new Error('an unexpected node type in the body')
    }
  }
  return out
}

export interface EditorOptions {
  provider: ChorusProvider
  /** Where the ProseMirror view goes. */
  mount: HTMLElement
  /** The `<input>` bound to the title, if any. */
  titleInput?: HTMLInputElement
  /** Start read-only (a view-mode token); the server's read-only notice also sets it. */
  readOnly?: boolean
  /**
   * The body holds content this editor cannot show without deleting it: the editor
   * unbinds (leaving the shared document untouched) and calls this with the reason.
   */
  onUnsupported?: (reason: string) => void
}

export interface ChorusEditor {
  view: EditorView
  /** Why the body is not shown (the editor unbound to protect it), or null. */
  unsupported: () => string | null
  /** Toolbar commands; each returns whether it applied. */
  commands: {
    bold: () => boolean
    italic: () => boolean
    link: (href: string | null) => boolean
    heading: (level: 1 | 2 | 3 | 4 | 5 | 6) => boolean
    paragraph: () => boolean
    bulletList: () => boolean
    orderedList: () => boolean
    undo: () => boolean
    redo: () => boolean
  }
  setReadOnly: (readOnly: boolean) => void
  destroy: () => void
}

const insertBreak: Command = (state, dispatch) => {
  if (dispatch !== undefined) dispatch(state.tr.replaceSelectionWith(schema.nodes.br.create()).scrollIntoView())
  return true
}

export function createEditor ({ provider, mount, titleInput, readOnly = false, onUnsupported }: EditorOptions): ChorusEditor {
  const fragment = provider.doc.getXmlFragment('body')
  let editable = !readOnly
  const li = schema.nodes.li

  // Checked before binding, and on every change before y-prosemirror sees it (this
  // observer is registered first, so it runs first): content the schema cannot hold
  // would otherwise be deleted from everyone's document.
  let unsupported = unsupportedContent(fragment)
  let view: EditorView | null = null
  const protect = (reason: string): void => {
    unsupported = reason
    editable = false
    if (view !== null) {
      view.destroy()
      mount.replaceChildren()
    }
    const notice = document.createElement('p')
    notice.className = 'chorus-unsupported'
    notice.textContent = `This draft holds content the editor cannot show without changing it (${reason}). ` +
      'It is left untouched; edit it in the host application.'
    mount.append(notice)
    onUnsupported?.(reason)
  }
  const guard = (): void => {
    if (unsupported !== null) return
    const reason = unsupportedContent(fragment)
    if (reason !== null) protect(reason)
  }
  fragment.observeDeep(guard)

  const state = EditorState.create({
    schema,
    plugins: [
      // The cursor and undo plugins need the sync plugin's binding.
      ...(unsupported === null
        ? [ySyncPlugin(fragment), yCursorPlugin(provider.awareness, { cursorBuilder, selectionBuilder }), yUndoPlugin()]
        : []),
      keymap({
        'Mod-z': undo,
        'Mod-y': redo,
        'Mod-Shift-z': redo,
        'Mod-b': toggleMark(schema.marks.strong),
        'Mod-i': toggleMark(schema.marks.em),
        'Mod-u': toggleMark(schema.marks.u),
        'Shift-Enter': chainCommands(exitCode, insertBreak),
        Enter: splitListItem(li),
        'Mod-[': liftListItem(li),
        'Mod-]': sinkListItem(li)
      }),
      keymap(baseKeymap)
    ]
  })
  const pmView = new EditorView(mount, {
    state,
    editable: () => editable
  })
  view = pmView
  if (unsupported !== null) {
    const reason = unsupported
    pmView.destroy()
    mount.replaceChildren()
    view = null
    protect(reason)
  }

  const run = (command: Command): boolean => {
    if (!editable || unsupported !== null) return false
    const applied = command(pmView.state, pmView.dispatch, pmView)
    pmView.focus()
    return applied
  }

  const toggleHeading = (level: 1 | 2 | 3 | 4 | 5 | 6): Command => {
    const type = schema.nodes[`h${level}`]
    return (st, dispatch) => {
      const { $from } = st.selection
      if ($from.parent.type === type) return setBlockType(schema.nodes.p)(st, dispatch)
      return setBlockType(type)(st, dispatch)
    }
  }

  const toggleList = (type: typeof schema.nodes.ul): Command => (st, dispatch) => {
    const { $from } = st.selection
    for (let d = $from.depth; d > 0; d--) {
      if ($from.node(d).type === type) return liftListItem(li)(st, dispatch)
    }
    return wrapInList(type)(st, dispatch)
  }

  const commands: ChorusEditor['commands'] = {
    bold: () => run(toggleMark(schema.marks.strong)),
    italic: () => run(toggleMark(schema.marks.em)),
    link: (href) => {
      const a = schema.marks.a
      if (href === null || href === '') return run(toggleMark(a))
      if (!isSafeUrl(href)) return false
      return run((st, dispatch) => {
        if (st.selection.empty) return false
        if (dispatch !== undefined) {
          const { from, to } = st.selection
          dispatch(st.tr.removeMark(from, to, a).addMark(from, to, a.create({ href })))
        }
        return true
      })
    },
    heading: (level) => run(toggleHeading(level)),
    paragraph: () => run(setBlockType(schema.nodes.p)),
    bulletList: () => run(toggleList(schema.nodes.ul)),
    orderedList: () => run(toggleList(schema.nodes.ol)),
    undo: () => run(undo),
    redo: () => run(redo)
  }

  const unbindTitle = titleInput !== undefined ? bindTitle(provider.doc.getText('title'), titleInput) : () => {}

  const setReadOnly = (ro: boolean): void => {
    editable = !ro && unsupported === null
    if (unsupported === null) pmView.setProps({ editable: () => editable })
    if (titleInput !== undefined) titleInput.readOnly = ro
    mount.classList.toggle('chorus-read-only', ro)
  }
  setReadOnly(readOnly)
  const offReadOnly = provider.on('read-only', () => setReadOnly(true))
  const offEditable = provider.on('editable', () => setReadOnly(false))

  return {
    view: pmView,
    unsupported: () => unsupported,
    commands,
    setReadOnly,
    destroy: () => {
      offReadOnly()
      offEditable()
      unbindTitle()
      fragment.unobserveDeep(guard)
      if (unsupported === null) pmView.destroy()
    }
  }
}

/**
 * Binds a plain `<input>` to a Y.Text: local typing becomes a minimal
 * delete + insert (common prefix and suffix kept); remote changes update the value
 * and keep the caret where it was relative to the text around it.
 */
export function bindTitle (ytext: Y.Text, input: HTMLInputElement): () => void {
  const origin = { bindTitle: input }
  input.value = ytext.toString()

  const onInput = (): void => {
    const before = ytext.toString()
    const after = input.value
    if (before === after) return
    let start = 0
    while (start < before.length && start < after.length && before[start] === after[start]) start++
    let endBefore = before.length
    let endAfter = after.length
    while (endBefore > start && endAfter > start && before[endBefore - 1] === after[endAfter - 1]) {
      endBefore--
      endAfter--
    }
    ytext.doc?.transact(() => {
      if (endBefore > start) ytext.delete(start, endBefore - start)
      if (endAfter > start) ytext.insert(start, after.slice(start, endAfter))
    }, origin)
  }

  const onChange = (event: Y.YTextEvent, tr: Y.Transaction): void => {
    if (tr.origin === origin) return
    const focused = document.activeElement === input
    let selStart = input.selectionStart ?? 0
    let selEnd = input.selectionEnd ?? 0
    // Shift the caret by the changes that happened before it.
    let index = 0
    for (const op of event.delta) {
      if (op.retain !== undefined) {
        index += op.retain
      } else if (typeof op.insert === 'string') {
        const n = op.insert.length
        if (index <= selStart) selStart += n
        if (index <= selEnd) selEnd += n
        index += n
      } else if (op.delete !== undefined) {
        const n = op.delete
        if (index < selStart) selStart -= Math.min(n, selStart - index)
        if (index < selEnd) selEnd -= Math.min(n, selEnd - index)
      }
    }
    input.value = ytext.toString()
    if (focused) input.setSelectionRange(selStart, selEnd)
  }

  input.addEventListener('input', onInput)
  ytext.observe(onChange)
  return () => {
    input.removeEventListener('input', onInput)
    ytext.unobserve(onChange)
  }
}
