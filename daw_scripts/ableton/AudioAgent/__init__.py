"""Audio-Agent remote script for Ableton Live 12.

Select "AudioAgent" as a Control Surface in Live's Link/Tempo/MIDI settings (no MIDI ports
needed). It listens for the Audio-Agent server's OSC replies on UDP (config.json beside this
file: listen_port, server_osc_port) and places every stem as an arrangement clip.
"""

import os

from .surface import AudioAgentSurface, load_config


def create_instance(c_instance):
    return AudioAgentSurface(c_instance, config=load_config(os.path.dirname(os.path.abspath(__file__))))
