namespace Sd.Loaders.Checkpoints;

/// <summary>The diffusers model a weight belongs to (the sub-folder of a diffusers model folder).</summary>
public enum ModelComponent
{
    Unet,
    Vae,
    TextEncoder,
}
