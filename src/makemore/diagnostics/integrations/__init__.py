"""The doctor where people already train: Jupyter, PyTorch Lightning, Hugging Face Trainer, TensorBoard.

One module per place; each needs its framework, installed as an extra of makemore:

    notebook.py     `_repr_html_` of Monitor, Finding and Records; LiveView    makemore[notebook]
    lightning.py    DoctorCallback, a lightning.pytorch.Callback               makemore[lightning]
    tensorboard.py  TensorBoardWriter: records as scalars, histograms, text    makemore[tensorboard]
    common.py       what they share: the scalars of a record under stable tags, and `Watch`,
                    which turns a Monitor's new recordings into updates with the findings so far

Importing this package imports none of the frameworks; importing one of its modules without its
framework raises an ImportError that says what to install.
"""
