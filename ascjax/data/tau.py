"""TFDS builder for TAU Urban Acoustic Scenes 2020 Mobile (development), read from a manual directory.

The manual directory holds the dataset exactly as distributed (REFERENCE.md §6); our synthetic set
(`ascjax.data.synthesize`) writes the same layout, so this one builder reads both. Nothing is ever
downloaded: point `manual_dir` at an unpacked copy of zenodo 3819968:

    builder = tau.prepare(manual_dir='/data/TAU-urban-acoustic-scenes-2020-mobile-development',
                          data_dir='/data/tfds')   # decode, check, convert, features: once

Splits: `train` = evaluation_setup/fold1_train.csv, `test` = fold1_evaluate.csv (row counts come
from the CSVs). Each example carries the features (log-mel, config `logmel-...`) or the waveform
(config `audio`, for features computed on the device), the scene label (alphabetical), device,
city, location identifier, the pair key (filename without the device suffix) and the filename.
The builder records how many clips it converted (resampled, downmixed, padded, cropped) per split in
`info.metadata['conversions']` and logs them; undecodable files or files with NaN/inf samples stop
the build with an error that names the file.
"""

from __future__ import annotations

import collections
import dataclasses
import logging

import numpy as np
import tensorflow_datasets as tfds

from ascjax import features, logs
from ascjax.data import audio, layout

NAME = 'tau2020_mobile'
SPLITS = ('train', 'test')


@dataclasses.dataclass
class TauConfig(tfds.core.BuilderConfig):
    """Examples hold log-mel features of `front_end`, or (store='audio') waveforms at its rate."""
    front_end: features.FrontEnd = features.FrontEnd()
    store: str = 'logmel'             # 'logmel' | 'audio'
    clip_seconds: float = layout.CLIP_SECONDS

    @property
    def num_samples(self) -> int:
        return int(round(self.clip_seconds * self.front_end.sample_rate))


def config_for(front_end: features.FrontEnd = features.FrontEnd(), store: str = 'logmel',
               clip_seconds: float = layout.CLIP_SECONDS) -> TauConfig:
    """A builder config named after everything that changes the stored examples."""
    if store not in ('logmel', 'audio'):
        raise ValueError(f'store must be "logmel" or "audio", got {store!r}')
    name = front_end.tag if store == 'logmel' else f'audio_sr{front_end.sample_rate}'
    if clip_seconds != layout.CLIP_SECONDS:
        name += f'_{clip_seconds:g}s'
    return TauConfig(name=name.replace('.', 'p'), front_end=front_end, store=store,
                     clip_seconds=clip_seconds, description=f'{store}, {front_end}')


class Tau2020Mobile(tfds.core.GeneratorBasedBuilder):
    """TAU Urban Acoustic Scenes 2020 Mobile, development set, fold 1."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.'}
    BUILDER_CONFIGS = [config_for(), config_for(store='audio')]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Unpack TAU-urban-acoustic-scenes-2020-mobile-development (zenodo 3819968) so that `manual_dir`
    contains audio/, meta.csv and evaluation_setup/, or write a synthetic set with
    `python -m ascjax.data.synthesize --out=DIR`.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        if cfg.store == 'audio':
            signal = {'audio': tfds.features.Tensor(shape=(cfg.num_samples,), dtype=np.float32)}
        else:
            frames = cfg.front_end.num_frames(cfg.num_samples)
            signal = {'spectrogram': tfds.features.Tensor(
                shape=(cfg.front_end.n_mels, frames), dtype=np.float32)}
        text = {k: tfds.features.Text() for k in ('device', 'city', 'location', 'pair', 'filename')}
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {**signal, 'label': tfds.features.ClassLabel(names=layout.SCENES), **text}),
            supervised_keys=None,
            homepage='https://zenodo.org/record/3819968',
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = str(dl_manager.manual_dir)
        # Read and check every split's metadata before decoding any audio: a broken CSV fails fast.
        clips = {split: layout.read_split(root, split) for split in SPLITS}
        layout.check_disjoint(root, clips)
        self.info.metadata['conversions'] = {}
        return {split: self._generate_examples(root, split, clips[split]) for split in SPLITS}

    def _generate_examples(self, root: str, split: str, clips: list[layout.Clip]):
        cfg = self.builder_config
        counts = collections.Counter({name: 0 for name in audio.CONVERSIONS + audio.FINDINGS})
        named = {finding: [] for finding in audio.FINDINGS}
        for clip in logs.counted(clips, len(clips), f'{NAME}/{split}: clips'):
            wave = audio.load(f'{root}/{clip.filename}', cfg.front_end.sample_rate,
                              cfg.num_samples)
            # Every clip of a TAU-layout set has the set's length: a shorter one is a fault.
            found = tuple('truncated' if c == 'padded' else c for c in wave.conversions)
            if 'truncated' in found:
                logging.warning('%s: shorter than the dataset\'s %.1f-s clips (zero-padded)',
                                clip.filename, cfg.num_samples / cfg.front_end.sample_rate)
            counts.update(found)
            for finding in audio.FINDINGS:
                if finding in found:
                    named[finding].append(clip.filename)
            if cfg.store == 'audio':
                signal = {'audio': wave.samples}
            else:
                spec = features.logmel_tf(wave.samples, cfg.front_end)
                signal = {'spectrogram': spec.numpy()}
            yield clip.filename, {
                **signal, 'label': clip.scene, 'device': clip.device, 'city': clip.city,
                'location': clip.location, 'pair': clip.pair, 'filename': clip.filename}
        counts['clips'] = len(clips)
        self.info.metadata['conversions'][split] = dict(counts)
        for finding, names in named.items():
            self.info.metadata.setdefault(f'{finding}_clips', {})[split] = names
        logging.info('%s/%s: %s', NAME, split, dict(counts))


def builder(data_dir: str, front_end: features.FrontEnd = features.FrontEnd(),
            store: str = 'logmel', clip_seconds: float = layout.CLIP_SECONDS) -> Tau2020Mobile:
    """A builder whose examples are stored as array_record, for random access by the pipeline."""
    config = config_for(front_end, store, clip_seconds)
    # TFDS refuses a config object named like a registered one: pass those by name.
    registered = {c.name: c for c in Tau2020Mobile.BUILDER_CONFIGS}
    if registered.get(config.name) == config:
        config = config.name
    return Tau2020Mobile(config=config, data_dir=data_dir, file_format='array_record')


def prepare(manual_dir: str, data_dir: str, **config) -> Tau2020Mobile:
    """Builds the dataset once (offline; a no-op when already built) and returns its builder."""
    tfds.disable_progress_bar()   # the build logs its own summary
    b = builder(data_dir, **config)
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=manual_dir, try_download_gcs=False))
    return b
