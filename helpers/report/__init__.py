"""Report: what gets written into results.json, and what is generated from it.

=============  ================================================================
``records``    what each notebook records for a model or a chapter (binary and
               seven-class model records, data, explanations, artefacts, seeds)
``tables``     tables, headline numbers and sentences read from results.json;
               README's generated blocks
``slides``     the slide deck ``Presentation.pdf``
=============  ================================================================

results.json itself is read and written by ``helpers.results``.
"""
