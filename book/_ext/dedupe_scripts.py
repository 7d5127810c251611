"""Drop repeated <script> tags from every page. jupyter-book 1 registers sphinx-thebe's inline configuration twice,
and the second copy is a JavaScript SyntaxError ("THEBE_JS_URL has already been declared") in every browser."""


def _dedupe(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for script in context.get("script_files", []):
        # the copies differ only in filename (None vs "") and priority: compare what the tag renders
        key = (getattr(script, "filename", str(script)) or "",
               tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
