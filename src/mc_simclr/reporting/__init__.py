"""Reports: of a single evaluation run (:mod:`mc_simclr.reporting.run`) and of a sweep of variants
over seeds (:mod:`mc_simclr.reporting.sweep`): tables, their Markdown, plots and MLflow metric values."""
