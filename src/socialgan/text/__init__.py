"""The caption language model: post text written by a small model trained on the hashtag's
own captions (the NLP equivalent of the GAN's pictures).

    captions.py   the captions (and alt texts) of a dataset's kept images, from their sidecars
    vocab.py      the character vocabulary (the tokenizer)
    model.py      a tiny GPT over characters, in the spirit of nanoGPT, and sampling from it
    baselines.py  unigram and Kneser-Ney bigram perplexities to compare it with
    options.py    a caption-lm request's options, checked (StartTraining calls it)
    train.py      the resumable training loop of the trainer's model kind "caption-lm"
    export.py     the trained model in storage: weights, n-gram hashes, model card
    generate.py   sampling by seed and prompt, from a model in storage
    safety.py     what generated text may not contain, and the fallback when it does

Kept free of torch imports here: the trainer's options and the publisher import this
package's names without paying for torch.
"""

CAPTION_MODEL = "caption-lm"  # the trainer's model kind (StartTraining model=...)

__all__ = ["CAPTION_MODEL"]
