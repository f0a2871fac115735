"""Knowledge distillation: teacher logits stored once per training clip, carried by the pipeline."""
