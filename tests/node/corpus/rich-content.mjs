// Realistic rich content (Confluence-like pages as y-prosemirror would write them),
// entirely within proto/whitelist-default.json: the whitelist must let every bit of it
// through unchanged (no false positives).
//
// Each builder is { name, build(doc) }; build may run several transactions (typing,
// formatting afterwards) like a real editor does. Everything is appended at the end.

import * as Y from 'yjs'

const bodyOf = (doc) => doc.getXmlFragment('body')

/** A prelim element; string children become XmlText, [text, attrs][] arrays become formatted XmlText. */
function el (name, attrs = {}, children = []) {
  const e = new Y.XmlElement(name)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v)
  if (children.length) e.insert(0, children.map(node))
  return e
}

function node (c) {
  if (typeof c === 'string') return new Y.XmlText(c)
  if (Array.isArray(c)) {
    const t = new Y.XmlText()
    // prelim Y.Text queues the inserts until it is integrated
    let at = 0
    for (const [s, attrs] of c) { t.insert(at, s, attrs ?? {}); at += s.length }
    return t
  }
  return c
}

function append (doc, ...nodes) {
  const body = bodyOf(doc)
  doc.transact(() => body.insert(body.length, nodes))
  return nodes
}

export const builders = [
  {
    name: 'title with unicode and literal markup as plain text',
    build (doc) {
      const t = doc.getText('title')
      doc.transact(() => t.insert(t.length, 'Release notes 2.4 — “<script>” is just text 🚀 & more'))
    }
  },
  {
    name: 'headings h1–h6',
    build (doc) {
      append(doc, ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((h, i) => el(h, { id: `heading-${i}` }, [`Heading level ${i + 1}`])))
    }
  },
  {
    name: 'paragraph with strong/em/u/s/code/sub/sup marks ({} and true values)',
    build (doc) {
      append(doc, el('p', {}, [[
        ['Plain, ', {}], ['bold', { strong: {} }], [', ', {}], ['italic', { em: {} }], [', ', {}],
        ['underlined', { u: {} }], [', ', {}], ['struck', { s: true }], [', ', {}], ['inline code', { code: {} }],
        [' H', {}], ['2', { sub: {} }], ['O and x', {}], ['2', { sup: {} }], [', ', {}],
        ['bold italic', { strong: true, em: true }], ['.', {}]
      ]]))
    }
  },
  {
    name: 'links as marks: https, mailto, tel, relative, anchor, target/rel/title',
    build (doc) {
      append(doc, el('p', {}, [[
        ['See ', {}], ['the docs', { a: { href: 'https://docs.example.com/guide?x=1&y=2#part' } }],
        [', write to ', {}], ['support', { a: { href: 'mailto:support@example.com?subject=Hi' } }],
        [', call ', {}], ['us', { a: { href: 'tel:+41-44-000-00-00' } }],
        [', open ', {}], ['a page', { a: { href: '/wiki/spaces/ENG/pages/123/Release+notes' } }],
        [', jump to ', {}], ['a section', { a: { href: '#section-2' } }],
        [' or ', {}], ['a new tab', { a: { href: 'https://example.org/', target: '_blank', rel: 'noopener noreferrer', title: 'Example' } }],
        ['.', {}]
      ]]))
    }
  },
  {
    name: 'link mark with a null attribute (as y-prosemirror stores mark attrs)',
    build (doc) {
      append(doc, el('p', {}, [[['Link with null title', { a: { href: 'https://example.com/null-title', title: null } }]]]))
    }
  },
  {
    name: 'overlapping links with y-prosemirror suffixed mark names',
    build (doc) {
      append(doc, el('p', {}, [[
        ['first ', { a: { href: 'https://one.example/' } }],
        ['overlap', { a: { href: 'https://one.example/' }, 'a--1a2b3c4d': { href: 'https://two.example/' } }],
        [' second', { 'a--1a2b3c4d': { href: 'https://two.example/' } }]
      ]]))
    }
  },
  {
    name: 'a element (block link) with href, target, rel, name',
    build (doc) {
      append(doc, el('p', {}, [el('a', { href: 'https://example.com/page', target: '_blank', rel: 'noopener', name: 'anchor-1' }, ['block link'])]))
    }
  },
  {
    name: 'images with https and relative src, alt, width/height (numbers and strings)',
    build (doc) {
      append(doc,
        el('p', {}, [el('img', { src: 'https://cdn.example.com/img/diagram.png?v=3', alt: 'Architecture diagram', width: 640, height: '480' })]),
        el('p', {}, [el('img', { src: '/download/attachments/123/screenshot.png', alt: '', width: '100%' })]))
    }
  },
  {
    name: 'table with caption, colgroup, thead/tbody/tfoot, colspan/rowspan, scope, align',
    build (doc) {
      append(doc, el('table', { class: 'confluenceTable', border: '1', cellpadding: '4', cellspacing: '0', width: '100%', summary: 'Quarterly numbers' }, [
        el('caption', {}, ['Quarterly numbers']),
        el('colgroup', {}, [el('col', { span: 1, width: '30%' }), el('col', { span: '2' })]),
        el('thead', {}, [el('tr', {}, [
          el('th', { scope: 'col', class: 'confluenceTh' }, ['Region']),
          el('th', { scope: 'col', colspan: 2, abbr: 'Rev', style: 'text-align: center;' }, ['Revenue'])
        ])]),
        el('tbody', {}, [
          el('tr', {}, [el('th', { scope: 'row', rowspan: 2 }, ['EMEA']), el('td', { align: 'right', valign: 'top' }, ['1,200']), el('td', { colspan: '1', rowspan: '1' }, ['1,300'])]),
          el('tr', {}, [el('td', { headers: 'h1 h2', width: '80', height: '20' }, [[['9', { strong: {} }], ['00', {}]]]), el('td', {}, ['950'])])
        ]),
        el('tfoot', {}, [el('tr', {}, [el('td', { colspan: 3, class: 'highlight-grey', 'data-highlight-colour': 'grey' }, ['Total: 4,350'])])])
      ]))
    }
  },
  {
    name: 'nested ul/ol with start, type, reversed, li value',
    build (doc) {
      append(doc, el('ul', {}, [
        el('li', {}, [el('p', {}, ['First'])]),
        el('li', {}, [el('p', {}, ['Second']), el('ol', { start: 3, type: 'a', reversed: 'reversed' }, [
          el('li', { value: 5 }, [el('p', {}, [[['nested ', {}], ['bold', { strong: {} }]]])]),
          el('li', {}, [el('p', {}, ['nested two']), el('ul', {}, [el('li', {}, ['deeper'])])])
        ])])
      ]))
    }
  },
  {
    name: 'blockquote with cite, q, cite element, abbr, address',
    build (doc) {
      append(doc,
        el('blockquote', { cite: 'https://example.com/source' }, [el('p', {}, ['Quoted wisdom.']), el('p', {}, [el('cite', {}, ['Someone'])])]),
        el('p', {}, [el('q', { cite: 'https://example.com/q' }, ['short quote']), ' and ', el('abbr', { title: 'HyperText Markup Language' }, ['HTML'])]),
        el('address', {}, ['Example AG, Zürich']))
    }
  },
  {
    name: 'pre/code block whose text looks like markup',
    build (doc) {
      append(doc, el('pre', { class: 'language-html' }, [el('code', {}, [
        '<script>alert("this is text, not code")</script>\n<a href="javascript:void(0)">x</a>\nstyle="background:url(javascript:1)"'
      ])]))
    }
  },
  {
    name: 'span marks with class, allowed styles, highlight data attributes',
    build (doc) {
      append(doc, el('p', { style: 'text-align: center; margin-left: 30px; line-height: 1.5' }, [[
        ['red', { span: { style: 'color: red' } }], [' ', {}],
        ['highlighted', { span: { class: 'highlight-yellow', 'data-highlight-colour': 'yellow', style: 'background-color: #ffeeaa;' } }],
        [' ', {}], ['big serif', { span: { style: "font-size: 18px; font-family: Georgia, 'Times New Roman', serif; font-weight: bold" } }],
        [' ', {}], ['ref', { span: { 'data-ref': 'ref-1', class: 'ref' } }],
        [' and ', {}], ['rgb', { span: { style: 'color: rgb(0, 128, 255); text-decoration: underline dotted' } }]
      ]]))
    }
  },
  {
    name: 'Confluence info macro (data-macro-*, contenteditable=false)',
    build (doc) {
      append(doc, el('div', {
        class: 'confluence-information-macro confluence-information-macro-information',
        'data-macro-name': 'info',
        'data-macro-id': '8f1d2c3b-4a5e-6f70-8192-a3b4c5d6e7f8',
        'data-macro-parameters': 'title=Heads up|icon=true',
        'data-macro-schema-version': '1',
        contenteditable: 'false'
      }, [el('p', { class: 'title' }, ['Heads up']), el('div', { class: 'confluence-information-macro-body' }, [el('p', {}, ['Macro body text.'])])]))
    }
  },
  {
    name: 'Confluence code macro and status/jira-like inline macros',
    build (doc) {
      append(doc,
        el('div', { 'data-macro-name': 'code', 'data-macro-id': 'c0de-0001', 'data-macro-parameters': 'language=js|linenumbers=true|theme=Midnight', 'data-macro-body-type': 'PLAIN_TEXT', contenteditable: 'false' },
          [el('pre', {}, ['const x = 1;\nconsole.log(x)'])]),
        el('p', {}, ['Status: ', el('span', { class: 'status-macro aui-lozenge aui-lozenge-success', 'data-macro-name': 'status', 'data-macro-parameters': 'colour=Green|title=DONE', contenteditable: 'false' }, ['DONE'])]))
    }
  },
  {
    name: 'Confluence attachment image (data-linked-resource-*, data-base-url)',
    build (doc) {
      append(doc, el('p', {}, [el('img', {
        class: 'confluence-embedded-image',
        src: '/download/attachments/98765/diagram.png?version=2&modificationDate=1700000000000&api=v2',
        alt: 'diagram.png',
        width: '400',
        'data-image-src': '/download/attachments/98765/diagram.png',
        'data-linked-resource-id': '98766',
        'data-linked-resource-version': '2',
        'data-linked-resource-type': 'attachment',
        'data-linked-resource-default-alias': 'diagram.png',
        'data-linked-resource-content-type': 'image/png',
        'data-linked-resource-container-id': '98765',
        'data-linked-resource-container-version': '7',
        'data-base-url': 'https://wiki.example.com'
      })]))
    }
  },
  {
    name: 'Confluence inline tasks',
    build (doc) {
      append(doc, el('ul', { class: 'inline-task-list', 'data-inline-tasks-content-id': '98765' }, [
        el('li', { class: 'checked', 'data-inline-task-id': '1' }, [[['Write the ', {}], ['release notes', { strong: {} }]]]),
        el('li', { 'data-inline-task-id': '2' }, ['Review with ', el('a', { class: 'confluence-userlink user-mention', 'data-username': 'jdoe', 'data-entity-id': 'u-42', 'data-entity-type': 'user', href: '/display/~jdoe' }, ['@John Doe'])])
      ]))
    }
  },
  {
    name: 'time with datetime, user mention link mark, space key',
    build (doc) {
      append(doc, el('p', {}, [
        'Due ', el('time', { datetime: '2024-05-01' }, ['1 May 2024']), ' for ',
        [['@Jane', { a: { href: '/display/~jane', title: 'Jane Roe' } }]],
        ' in ', el('span', { 'data-space-key': 'ENG', class: 'space-link' }, ['ENG'])
      ]))
    }
  },
  {
    name: 'Confluence layout sections',
    build (doc) {
      append(doc, el('div', { class: 'contentLayout2', 'data-atlassian-layout': '{"name":"two-equal","columns":["50%","50%"]}' }, [
        el('div', { class: 'columnLayout two-equal', 'data-layout': 'two-equal' }, [
          el('div', { class: 'cell normal', 'data-type': 'normal' }, [el('div', { class: 'innerCell' }, [el('p', {}, ['Left column'])])]),
          el('div', { class: 'cell normal', 'data-type': 'normal' }, [el('div', { class: 'innerCell' }, [el('p', {}, ['Right column'])])])
        ])
      ]))
    }
  },
  {
    name: 'dl/dt/dd, hr, br, inline elements (kbd, samp, var, small, big, mark, del, ins)',
    build (doc) {
      append(doc,
        el('dl', {}, [el('dt', {}, ['Term']), el('dd', {}, ['Definition'])]),
        el('hr'),
        el('p', {}, ['Line one', el('br'), 'Line two with ', el('kbd', {}, ['Ctrl']), '+', el('kbd', {}, ['C']), ', ',
          el('samp', {}, ['output']), ', ', el('var', {}, ['x']), ', ', el('small', {}, ['small']), ', ', el('big', {}, ['big']), ', ',
          el('mark', {}, ['marked']), ', ', el('del', { cite: 'https://example.com/why', datetime: '2024-01-01T10:00:00Z' }, ['old']), ' ',
          el('ins', { cite: '/changes/2' }, ['new'])]),
        el('p', {}, [[['k', { kbd: {} }], [' ', {}], ['sm', { small: {} }], [' ', {}], ['mk', { mark: {} }], [' ', {}], ['gone', { del: {} }], [' ', {}], ['added', { ins: {} }], [' ', {}], ['strike', { strike: {} }], [' ', {}], ['b', { b: {} }], ['i', { i: {} }]]]))
    }
  },
  {
    name: 'figure with figcaption',
    build (doc) {
      append(doc, el('figure', { class: 'image-center' }, [el('img', { src: 'https://cdn.example.com/a.jpg', alt: 'A photo', width: 320, height: 240 }), el('figcaption', {}, ['A caption with ', [['emphasis', { em: {} }]]])]))
    }
  },
  {
    name: 'rtl/lang/dir/title/accesskey globals, div with allowed styles',
    build (doc) {
      append(doc,
        el('p', { dir: 'rtl', lang: 'ar', title: 'Arabic paragraph' }, ['مرحبا بالعالم']),
        el('div', { id: 'box-1', class: 'panel', accesskey: 'b', style: 'border: 1px solid #cccccc; border-collapse: collapse; margin: 0 auto; width: 50%; display: block; vertical-align: middle; white-space: nowrap; text-indent: 2em; font-style: italic' }, [el('p', {}, ['Boxed'])]),
        el('ol', { style: 'list-style-type: lower-roman' }, [el('li', {}, ['roman'])]))
    }
  },
  {
    name: 'typing session: several transactions, deletes and later formatting',
    build (doc) {
      const body = bodyOf(doc)
      const p = new Y.XmlElement('p')
      const text = new Y.XmlText()
      doc.transact(() => { body.insert(body.length, [p]); p.insert(0, [text]) })
      for (const ch of 'Typing a sentence slowly, with a tpyo.') doc.transact(() => text.insert(text.length, ch))
      doc.transact(() => { const i = text.toString().indexOf('tpyo'); text.delete(i, 4); text.insert(i, 'typo') })
      doc.transact(() => text.format(0, 6, { strong: {} }))
      doc.transact(() => text.format(9, 8, { a: { href: 'https://example.com/sentence' } }))
      doc.transact(() => text.format(0, 6, { strong: null }))
      doc.transact(() => text.format(0, 6, { em: {} }))
    }
  },
  {
    name: 'form and label (allowed, with name/for)',
    build (doc) {
      append(doc, el('form', { name: 'feedback' }, [el('label', { for: 'field-1' }, ['Your feedback'])]))
    }
  },
  {
    name: 'table cells holding lists, marks and macros',
    build (doc) {
      append(doc, el('table', {}, [el('tbody', {}, [el('tr', {}, [
        el('td', {}, [el('ul', {}, [el('li', {}, [[['cell item ', {}], ['linked', { a: { href: 'https://example.com/cell' } }]]])])]),
        el('td', { style: 'background-color: #f4f5f7; text-align: left' }, [el('div', { 'data-macro-name': 'jira', 'data-macro-id': 'j-1', 'data-macro-parameters': 'key=ENG-1|server=System JIRA', contenteditable: 'false' }, ['ENG-1'])])
      ])])]))
    }
  }
]

export default builders
