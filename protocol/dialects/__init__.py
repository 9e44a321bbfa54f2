"""Client dialects: each client wire format parsed into one typed request and rendered from
one typed answer (and one stream of events), so every dialect reaches every provider through
the same sealed `llm.complete` / `llm.stream` (fallback, limits, budgets, ledger and audit
included).

Pure translation, no I/O: the sandbox parses and renders; the guardian never sees a dialect.
`core` holds the shared shapes, one module per dialect holds its parser and renderer: `chat`
(OpenAI's Chat Completions), `anthropic` (Anthropic's Messages), `responses` (OpenAI's
Responses).
"""
