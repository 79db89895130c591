"""The doctor where people already train: Jupyter, PyTorch Lightning, Hugging Face Trainer, TensorBoard.

One module per place; each needs its framework, installed as an extra of makemore:

    notebook.py     `_repr_html_` of Monitor, Finding and Records; LiveView    makemore[notebook]
    lightning.py    DoctorCallback, a lightning.pytorch.Callback               makemore[lightning]
    hf.py           DoctorCallback, a transformers.TrainerCallback             makemore[hf]
    tensorboard.py  TensorBoardWriter: records as scalars, histograms, text    makemore[tensorboard]
    common.py       what they share: the scalars of a record under stable tags, `Watch` (a
                    Monitor's new recordings as updates with the findings so far), the end of a run

Importing this package imports none of the frameworks; importing one of its modules without its
framework raises an ImportError that says what to install.
"""
