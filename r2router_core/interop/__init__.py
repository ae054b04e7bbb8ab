"""Formats of other projects: the R2-Router research release (read) and RouterArena (write).

``research_release`` is read by ``R2Router.from_pretrained``; ``routerarena`` writes the RouterArena
submission of ``r2router eval routerarena --export-routerarena DIR``. Import from the modules: this
package re-exports nothing, so that the engine can read a release without loading the evaluation.
"""
