"""The review service: the ASGI app (:mod:`pv.web.app`), its dependencies (:mod:`pv.web.deps`), the JSON API
(:mod:`pv.web.api`) and the pages (:mod:`pv.web.pages`, ``templates/``). ``pv serve`` runs it on uvicorn."""
